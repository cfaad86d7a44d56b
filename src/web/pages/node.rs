//! `GET /services/{id}` and `GET /destinations/{id}` (`id` is the topology node id): a node's
//! edges in and out, its dependencies through brokers, and its recent traces.

use super::format;
use super::traces::TraceItem;
use super::window::{page_window, PageWindow, WindowQuery};
use crate::model::TraceQuery;
use crate::model::{EdgeKind, NodeKind};
use crate::percent;
use crate::topology::{Edge, Topology};
use crate::web::api::load_topology;
use crate::web::render::{render, PageError};
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;

/// An edge seen from one node: the node at its other end.
pub struct EdgeItem {
    pub other_id: String,
    pub other_name: String,
    /// What the other node is (`service`, `destination`, `external`): a service and a
    /// destination may share a name.
    pub other_kind: &'static str,
    pub other_href: String,
    pub kind: String,
    pub count: String,
    pub errors: i64,
    /// Failures by reason (`nack 3, dead_letter 1`), empty when none.
    pub failures: String,
    /// Per second over the time the edge was active in the window.
    pub rate: String,
    pub p50: String,
    pub p99: String,
    /// Stream events read again (not in the count), with their p99 delay; empty when none.
    pub replays: String,
}

#[derive(Template)]
#[template(path = "node.html")]
pub struct NodePage {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub system: String,
    pub namespace: String,
    pub window: PageWindow,
    pub seen: bool,
    pub incoming: Vec<EdgeItem>,
    pub outgoing: Vec<EdgeItem>,
    pub upstream: Vec<EdgeItem>,
    pub downstream: Vec<EdgeItem>,
    /// The findings this node is in: (pattern, its name, description, the map framing it in
    /// this window).
    pub findings: Vec<(&'static str, String, String, String)>,
    /// Where the node was seen: `traces`, `broker`, or both.
    pub seen_in: String,
    /// What the broker says a destination is (empty when no broker reported it).
    pub entity: String,
    pub sparks: Vec<super::sparkline::Spark>,
    /// The figures its broker reported, over the window (discovered brokers).
    pub broker_sparks: Vec<super::sparkline::Spark>,
    pub traces: Vec<TraceItem>,
    pub traces_href: String,
    /// Embedded-broker destinations only: the broker's live state of this destination.
    pub broker: Option<super::broker_state::BrokerState>,
    /// A partitioned destination's partitions (a Kafka topic), as its broker reported them.
    pub partitions: Vec<crate::topology::partitions::Partition>,
    /// Services only: the journeys that start here.
    pub journeys: Option<super::journeys::Journeys>,
}

/// Page link of a node id: services and destinations have pages, external peers do not.
pub fn node_href(id: &str) -> String {
    if id.starts_with("service:") {
        format!("/services/{}", percent::encode(id))
    } else if id.starts_with("destination:") {
        format!("/destinations/{}", percent::encode(id))
    } else {
        String::new()
    }
}

fn item(
    topo: &Topology,
    other: &str,
    kind: &str,
    count: Option<i64>,
    traffic: Option<&Edge>,
    e: &crate::topology::build::Latency,
) -> EdgeItem {
    let node = topo.node(other);
    EdgeItem {
        other_id: other.to_string(),
        other_name: node
            .map(|n| n.name.clone())
            .unwrap_or_else(|| other.to_string()),
        other_kind: node
            .map(|n| n.kind.as_str())
            .or_else(|| {
                other
                    .split(':')
                    .next()
                    .and_then(NodeKind::parse)
                    .map(|k| k.as_str())
            })
            .unwrap_or(""),
        other_href: node_href(other),
        kind: kind.to_string(),
        count: count
            .map(|c| c.to_string())
            .unwrap_or_else(|| "inferred".to_string()),
        errors: traffic.map_or(0, |t| t.errors),
        failures: traffic.map(failures).unwrap_or_default(),
        rate: traffic
            .filter(|t| t.active_secs > 0.0)
            .map(|t| format::per_sec(t.active_rate_per_sec))
            .unwrap_or_default(),
        p50: format::opt_micros(e.p50_micros),
        p99: format::opt_micros(e.p99_micros),
        replays: traffic
            .and_then(|t| t.replays.as_ref())
            .map(|r| {
                format!(
                    "{} replayed, p99 {}",
                    r.count,
                    format::opt_micros(r.latency.p99_micros)
                )
            })
            .unwrap_or_default(),
    }
}

/// An edge's failures by reason, in words (`nack 3, dead_letter 1`).
fn failures(e: &Edge) -> String {
    let parts: Vec<String> = e
        .failures
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    parts.join(", ")
}

fn edge_item(topo: &Topology, e: &Edge, other: &str) -> EdgeItem {
    item(
        topo,
        other,
        e.kind.as_str(),
        Some(e.count),
        Some(e),
        &e.latency,
    )
}

impl NodePage {
    /// `traffic`: the destination's traced partitions (`partition_traffic`; none for a
    /// service).
    fn new(
        id: String,
        kind: NodeKind,
        window: PageWindow,
        topo: &Topology,
        traffic: &[crate::model::PartitionTraffic],
    ) -> NodePage {
        let node = topo.node(&id);
        let fallback = id
            .splitn(if kind == NodeKind::Destination { 3 } else { 2 }, ':')
            .last()
            .unwrap_or("")
            .to_string();
        let incoming = topo
            .edges
            .iter()
            .filter(|e| e.to == id)
            .map(|e| edge_item(topo, e, &e.from))
            .collect();
        let outgoing = topo
            .edges
            .iter()
            .filter(|e| e.from == id)
            .map(|e| edge_item(topo, e, &e.to))
            .collect();
        // A dependency's traffic is the consume edge it ends in (via -> consuming service):
        // its errors, failures and rate.
        let dep = |d: &crate::topology::Dependency, other: &str| {
            let consume = topo
                .edges
                .iter()
                .find(|e| e.kind == EdgeKind::Consume && e.from == d.via && e.to == d.to);
            let mut it = item(topo, other, "via", d.count, consume, &d.latency);
            it.kind = topo
                .node(&d.via)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| d.via.clone());
            it
        };
        let upstream = topo
            .dependencies
            .iter()
            .filter(|d| d.to == id)
            .map(|d| dep(d, &d.from))
            .collect();
        let downstream = topo
            .dependencies
            .iter()
            .filter(|d| d.from == id)
            .map(|d| dep(d, &d.to))
            .collect();
        let findings = topo
            .findings
            .iter()
            .filter(|f| f.nodes.contains(&id))
            .map(|f| {
                let href = format!(
                    "/?{}&finding={}&on={}",
                    window.page_query(),
                    f.pattern,
                    percent::encode(&id)
                );
                let label = f.pattern.replace('_', " ");
                (f.pattern, label, f.description.clone(), href)
            })
            .collect();
        let name = node.map(|n| n.name.clone()).unwrap_or(fallback);
        let partitions = match kind {
            NodeKind::Destination => crate::topology::partitions::partitions(topo, &id, traffic)
                .map(|p| p.partitions)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let filter = if kind == NodeKind::Service {
            "service"
        } else {
            "destination"
        };
        NodePage {
            kind: kind.as_str(),
            system: node.and_then(|n| n.system.clone()).unwrap_or_default(),
            namespace: node.and_then(|n| n.namespace.clone()).unwrap_or_default(),
            seen: node.is_some(),
            seen_in: node
                .map(|n| {
                    let names: Vec<&str> = n.seen_in.iter().map(|s| s.as_str()).collect();
                    names.join(", ")
                })
                .unwrap_or_default(),
            entity: node
                .and_then(|n| n.entity.flatten())
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            traces_href: format!(
                "/traces?{filter}={}&{}",
                percent::encode(&name),
                window.page_query()
            ),
            name,
            id,
            window,
            incoming,
            outgoing,
            upstream,
            downstream,
            findings,
            sparks: Vec::new(),
            broker_sparks: Vec::new(),
            traces: Vec::new(),
            broker: None,
            partitions,
            journeys: None,
        }
    }
}

async fn page(
    id: String,
    kind: NodeKind,
    q: WindowQuery,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let prefix = format!("{}:", kind.as_str());
    if !id.starts_with(&prefix) {
        return Err(PageError::NotFound(format!(
            "{id:?} is not a {} id",
            kind.as_str()
        )));
    }
    let window = match page_window(&q, kind.as_str(), &id[prefix.len()..]).await? {
        Ok(w) => w,
        Err(bad_window) => return Ok(bad_window),
    };
    let topo = load_topology(&state.store, window.window).await?;
    let traffic = if kind == NodeKind::Destination && topo.node(&id).is_some() {
        let (node, w) = (id.clone(), window.window);
        state
            .store
            .blocking(move |s| s.partition_traffic(&node, w))
            .await?
    } else {
        Vec::new()
    };
    let mut page = web::block(move || NodePage::new(id, kind, window, &topo, &traffic))
        .await
        .map_err(|e| PageError::Render(e.to_string()))?;
    let (name, w) = (page.name.clone(), page.window.window);
    let query = TraceQuery {
        service: (kind == NodeKind::Service).then(|| name.clone()),
        destination: (kind == NodeKind::Destination).then_some(name),
        window: Some(w),
        limit: 20,
        ..TraceQuery::default()
    };
    let node_id = page.id.clone();
    let (traces, sparks) = state
        .store
        .blocking(move |s| {
            let traces: Vec<TraceItem> = s
                .search_traces(&query)?
                .traces
                .iter()
                .map(TraceItem::from_summary)
                .collect();
            let minutes = s.node_minutes(&node_id, w)?;
            let sparks = super::sparkline::sparks(&minutes, w, kind == NodeKind::Service);
            let history = s.broker_history(&node_id, w)?;
            let broker_sparks = super::sparkline::broker_sparks(&history, w);
            Ok((traces, (sparks, broker_sparks)))
        })
        .await?;
    page.traces = traces
        .into_iter()
        .map(|t| t.in_window(&page.window))
        .collect();
    (page.sparks, page.broker_sparks) = sparks;
    if kind == NodeKind::Service {
        page.journeys = Some(journeys(&state, &page).await?);
    }
    if super::broker_state::is_broker_destination(&page.id) {
        page.broker = Some(super::broker_state::load(&state.broker, &page.name).await);
    }
    render(page).await
}

/// The pathways that start at the page's service, within the page's bounds.
async fn journeys(
    state: &AppState,
    page: &NodePage,
) -> Result<super::journeys::Journeys, PageError> {
    use super::journeys::{Journeys, PAGE_BUDGET, PAGE_TOP, PAGE_TRACES};
    use crate::web::api::pathways::{load, Bounds};
    let ends = crate::pathway::Ends {
        from: Some(page.id.clone()),
        to: None,
    };
    let bounds = Bounds {
        traces: PAGE_TRACES,
        top: PAGE_TOP,
        budget: PAGE_BUDGET,
    };
    let found = load(&state.store, ends, page.window.window, bounds).await?;
    Ok(Journeys::new(&found, &page.name, &page.window))
}

pub async fn service(
    path: web::Path<String>,
    q: web::Query<WindowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    page(path.into_inner(), NodeKind::Service, q.into_inner(), state).await
}

pub async fn destination(
    path: web::Path<String>,
    q: web::Query<WindowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    page(
        path.into_inner(),
        NodeKind::Destination,
        q.into_inner(),
        state,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::partitions::{GroupOnPartition, Partition, ServiceOnPartition};

    /// The partition table alone, with the page's variables.
    #[derive(Template)]
    #[template(source = "{% include \"partitions.html\" %}", ext = "html")]
    struct PartitionsOnly {
        partitions: Vec<Partition>,
        window: PageWindow,
    }

    #[test]
    fn the_partition_table_escapes_group_ids_and_names() {
        let hostile = "<script>alert(1)</script>\"'&";
        let window = PageWindow::from_query(&WindowQuery {
            window: Some("1h".into()),
            since: None,
            until: None,
        })
        .expect("window");
        let partitions = vec![
            Partition {
                partition: 0,
                end_offset: Some(9),
                messages: Some(9),
                written: Some(4),
                consumers: Some(1),
                lag: Some(3),
                groups: vec![GroupOnPartition {
                    group: hostile.into(),
                    node: format!("service:{hostile}"),
                    name: hostile.into(),
                    committed: Some(6),
                    consumers: Some(1),
                    lag: Some(3),
                }],
                published: Some(2),
                consumed: Some(5),
                services: vec![ServiceOnPartition {
                    node: format!("service:{hostile}"),
                    name: hostile.into(),
                    published: 2,
                    consumed: 5,
                }],
            },
            Partition {
                partition: 1,
                ..Partition::default()
            },
        ];
        let html = PartitionsOnly { partitions, window }
            .render()
            .expect("render");
        assert!(!html.contains("<script>"), "{html}");
        let doc = scraper::Html::parse_fragment(&html);
        let sel = |css: &str| scraper::Selector::parse(css).expect("selector");
        let rows: Vec<_> = doc
            .select(&sel("#partition-table .partition-row"))
            .collect();
        assert_eq!(rows.len(), 2);
        let text = |row: &scraper::ElementRef, css: &str| -> String {
            row.select(&sel(css))
                .next()
                .map(|e| e.text().collect::<String>())
                .unwrap_or_default()
        };
        assert_eq!(text(&rows[0], ".written"), "4");
        assert_eq!(text(&rows[0], ".lag"), "3");
        assert_eq!(text(&rows[0], ".group-id"), hostile, "shown as text");
        assert_eq!(text(&rows[0], ".group-service"), hostile);
        let link = rows[0]
            .select(&sel(".group-service"))
            .next()
            .and_then(|a| a.value().attr("href"))
            .unwrap_or_default();
        assert!(
            link.starts_with("/services/service%3A%3Cscript%3E"),
            "{link}"
        );
        assert_eq!(text(&rows[0], ".traced-consumed"), "5");
        assert_eq!(text(&rows[0], ".traced-name"), hostile, "shown as text");
        assert_eq!(text(&rows[0], ".traced-service-published"), "2");
        assert_eq!(text(&rows[1], ".written"), "?");
        assert_eq!(text(&rows[1], ".end-offset"), "?");
        assert_eq!(text(&rows[1], ".groups"), "no group");
        assert_eq!(text(&rows[1], ".services"), "no span");
    }
}
