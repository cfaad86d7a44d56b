//! The one routing table of the `--http` server.

use super::pages::{brokers, login, map, node, trace, traces};
use super::{api, assets, live};
use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Routes are tried in order, dynamic segments by regex: the broker's message path (publish,
    // ack, streaming consume) comes first, the pages after it.
    cfg.configure(super::error::json_extractor_errors)
        .configure(crate::broker::http::configure)
        .route("/healthz", web::get().to(api::healthz))
        .route("/login", web::get().to(login::page))
        .route("/login", web::post().to(login::login))
        .route("/logout", web::post().to(login::logout))
        .route("/api/topology", web::get().to(api::topology_json))
        .route("/api/topology.json", web::get().to(api::topology_json))
        .route("/api/topology.dot", web::get().to(api::topology_dot))
        .route("/api/traces", web::get().to(api::traces))
        .route("/api/traces/{trace_id}", web::get().to(api::trace))
        .route("/api/stats", web::get().to(api::stats))
        .route("/api/live", web::get().to(live::live))
        .route("/api/brokers", web::get().to(brokers::api))
        .route("/", web::get().to(map::page))
        .route("/traces", web::get().to(traces::page))
        .route("/brokers", web::get().to(brokers::page))
        .route("/traces/{trace_id}", web::get().to(trace::page))
        .route("/services/{id:.*}", web::get().to(node::service))
        .route("/destinations/{id:.*}", web::get().to(node::destination))
        .route("/static/{path:.*}", web::get().to(assets::serve));
}
