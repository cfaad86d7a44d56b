//! `GET /`: the topology map. The page carries the window, the findings, a keyboard-
//! reachable node list and the topology itself (`/api/topology`'s answer, in a JSON script
//! element), which static/app/map.js draws: no second request and no second build before the
//! first draw.

use super::script_json::ScriptJson;
use super::window::{page_window, PageWindow, WindowQuery};
use crate::topology::{self, Topology};
use crate::web::api::load_declared_topology;
use crate::web::render::{render, PageError};
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;

pub struct NodeItem {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub system: String,
    pub namespace: String,
}

pub struct FindingItem {
    pub pattern: &'static str,
    pub label: &'static str,
    pub description: String,
    pub nodes: Vec<String>,
}

#[derive(Template)]
#[template(path = "map.html")]
pub struct MapPage {
    pub window: PageWindow,
    pub node_count: usize,
    pub edge_count: usize,
    pub error_edges: usize,
    pub systems: Vec<String>,
    pub namespaces: Vec<String>,
    pub nodes: Vec<NodeItem>,
    pub findings: Vec<FindingItem>,
    /// The topology as `/api/topology` answers it (empty if it could not be written: the
    /// script then asks the API).
    pub topology_data: ScriptJson,
}

/// Human label of a detector's pattern name.
pub fn pattern_label(pattern: &str) -> &'static str {
    match pattern {
        "broadcast" => "Broadcast",
        "work_queue" => "Work queue",
        "action_response" => "Action / response",
        "dead_end" => "Dead end",
        "idle_subscriber" => "Idle subscriber",
        "cycle" => "Cycle",
        "declared_unused" => "Declared, unused",
        "undeclared_flow" => "Undeclared flow",
        "declared_silent_publisher" => "Silent publisher",
        _ => "Finding",
    }
}

impl MapPage {
    pub fn new(window: PageWindow, topo: &Topology) -> MapPage {
        let mut systems: Vec<String> = topo.nodes.iter().filter_map(|n| n.system.clone()).collect();
        systems.sort();
        systems.dedup();
        let mut namespaces: Vec<String> = topo
            .nodes
            .iter()
            .filter_map(|n| n.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let mut nodes: Vec<NodeItem> = topo
            .nodes
            .iter()
            .map(|n| NodeItem {
                id: n.id.clone(),
                name: n.name.clone(),
                kind: n.kind.as_str(),
                system: n.system.clone().unwrap_or_default(),
                namespace: n.namespace.clone().unwrap_or_default(),
            })
            .collect();
        let rank = |k: &str| match k {
            "service" => 0,
            "destination" => 1,
            _ => 2,
        };
        nodes.sort_by(|a, b| (rank(a.kind), &a.name).cmp(&(rank(b.kind), &b.name)));
        let findings = topo
            .findings
            .iter()
            .map(|f| FindingItem {
                pattern: f.pattern,
                label: pattern_label(f.pattern),
                description: f.description.clone(),
                nodes: f.nodes.clone(),
            })
            .collect();
        MapPage {
            window,
            node_count: topo.nodes.len(),
            edge_count: topo.edges.len(),
            error_edges: topo.edges.iter().filter(|e| e.errors > 0).count(),
            systems,
            namespaces,
            nodes,
            findings,
            topology_data: topology::json::to_vec(topo)
                .map(|json| ScriptJson::of_json(&json))
                .unwrap_or_else(|_| ScriptJson::empty()),
        }
    }

    pub fn topology_url(&self) -> String {
        format!("/api/topology?{}", self.window.query())
    }
}

pub async fn page(
    q: web::Query<WindowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let window = match page_window(&q, "map", "Topology").await? {
        Ok(w) => w,
        Err(bad_window) => return Ok(bad_window),
    };
    let topo = load_declared_topology(&state, window.window).await?;
    let page = web::block(move || MapPage::new(window, &topo))
        .await
        .map_err(|e| PageError::Render(e.to_string()))?;
    render(page).await
}
