//! The one routing table of the `--http` server.

use super::api::jaeger;
use super::pages::{brokers, changes, login, map, node, trace, traces};
use super::{api, assets, live};
use actix_web::{guard, web, Route};

/// A route for GET that answers HEAD too (the same handler; actix sends no body for HEAD).
/// Every page and API read is one, so `curl -I` and link checkers get the GET status.
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Routes are tried in order, dynamic segments by regex: the broker's message path (publish,
    // ack, streaming consume) comes first, the pages after it.
    cfg.configure(super::error::json_extractor_errors)
        .configure(crate::broker::http::configure)
        .route("/healthz", get().to(api::healthz))
        .route("/login", get().to(login::page))
        .route("/login", web::post().to(login::login))
        .route("/logout", web::post().to(login::logout))
        .route("/api/topology", get().to(api::topology_json))
        .route("/api/topology.json", get().to(api::topology_json))
        .route("/api/topology.dot", get().to(api::topology_dot))
        .route("/api/asyncapi", get().to(api::asyncapi))
        .route("/api/topology/diff", get().to(api::diff::diff_json))
        .route("/api/topology/diff.dot", get().to(api::diff::diff_dot))
        .route("/api/reach", get().to(api::reach))
        .route("/api/impact", get().to(api::impact))
        .route("/api/partitions", get().to(api::partitions))
        .route("/api/round-trips", get().to(api::round_trips))
        .route("/api/pathways", get().to(api::pathways::pathways))
        .route("/api/traces", get().to(api::traces))
        .route("/api/traces/{trace_id}", get().to(api::trace))
        .route("/api/stats", get().to(api::stats))
        .route("/api/live", web::get().to(live::live))
        .route("/api/brokers", get().to(brokers::api))
        .route("/api/changes", get().to(changes::api))
        .route("/metrics", get().to(api::metrics::metrics))
        // Jaeger's query API, for Grafana's Jaeger data source (URL http://HOST:PORT/jaeger).
        .route("/jaeger/api/services", get().to(jaeger::services))
        .route(
            "/jaeger/api/services/{service}/operations",
            get().to(jaeger::service_operations),
        )
        .route("/jaeger/api/operations", get().to(jaeger::operations))
        .route("/jaeger/api/traces", get().to(jaeger::search))
        .route("/jaeger/api/traces/{trace_id}", get().to(jaeger::trace))
        .route("/jaeger/api/dependencies", get().to(jaeger::dependencies))
        .route("/", get().to(map::page))
        .route("/traces", get().to(traces::page))
        .route("/brokers", get().to(brokers::page))
        .route("/changes", get().to(changes::page))
        .route("/traces/{trace_id}", get().to(trace::page))
        .route(
            "/traces/{trace_id}/spans/{span_id}",
            get().to(trace::span_details),
        )
        .route("/services/{id:.*}", get().to(node::service))
        .route("/destinations/{id:.*}", get().to(node::destination))
        .route("/static/{path:.*}", get().to(assets::serve));
}
