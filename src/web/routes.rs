//! The one routing table of the `--http` server.

use super::api;
use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(api::healthz))
        .route("/api/topology", web::get().to(api::topology_json))
        .route("/api/topology.json", web::get().to(api::topology_json))
        .route("/api/topology.dot", web::get().to(api::topology_dot))
        .route("/api/traces", web::get().to(api::traces))
        .route("/api/traces/{trace_id}", web::get().to(api::trace))
        .route("/api/stats", web::get().to(api::stats))
        .configure(crate::broker::http::configure);
}
