//! Static files (`static/`), embedded in the binary so it runs from anywhere and offline.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app/style.css", "text/css; charset=utf-8"),
    asset!("app/theme.js", "text/javascript; charset=utf-8"),
    asset!("app/map.js", "text/javascript; charset=utf-8"),
    asset!("app/map-kit.js", "text/javascript; charset=utf-8"),
    asset!("app/map-layout.js", "text/javascript; charset=utf-8"),
    asset!("app/map-badges.js", "text/javascript; charset=utf-8"),
    asset!("app/map-panel.js", "text/javascript; charset=utf-8"),
    asset!("app/map-compare.js", "text/javascript; charset=utf-8"),
    asset!("app/map-compare.css", "text/css; charset=utf-8"),
    asset!("app/svg.js", "text/javascript; charset=utf-8"),
    asset!("app/traces.js", "text/javascript; charset=utf-8"),
    asset!("app/trace.js", "text/javascript; charset=utf-8"),
    asset!("app/live.js", "text/javascript; charset=utf-8"),
    asset!("app/favicon.svg", "image/svg+xml"),
    asset!(
        "vendor/cytoscape/cytoscape.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "vendor/cytoscape-dagre/cytoscape-dagre.min.js",
        "text/javascript; charset=utf-8"
    ),
];

/// `GET /static/{path}`: an embedded file, or 404.
pub async fn serve(path: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.path == path.as_str()) {
        Some(a) => HttpResponse::Ok()
            .content_type(a.mime)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(a.body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_content_and_a_unique_path() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(seen.insert(a.path), "{} listed twice", a.path);
        }
    }
}
