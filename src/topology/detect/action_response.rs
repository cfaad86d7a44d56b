use super::{name, Detector, Finding, Flows, Topology};

/// Two services that message each other both ways: a request event and its response event,
/// an API call in disguise.
pub struct ActionResponse;

impl Detector for ActionResponse {
    fn pattern(&self) -> &'static str {
        "action_response"
    }

    fn summary(&self) -> &'static str {
        "a pair of services exchanging request and response events (a call over the broker)"
    }

    fn find(&self, topo: &Topology, _: &Flows) -> Vec<Finding> {
        let mut out = Vec::new();
        // The first dependency of each (from, to), looked up by key: a merged broker's
        // bindings can make thousands of dependencies.
        let mut first: foldhash::HashMap<(&str, &str), &crate::topology::Dependency> =
            foldhash::HashMap::default();
        for d in &topo.dependencies {
            first.entry((&d.from, &d.to)).or_insert(d);
        }
        for d in &topo.dependencies {
            if d.from >= d.to {
                continue;
            }
            if let Some(back) = first.get(&(d.to.as_str(), d.from.as_str())) {
                out.push(Finding {
                    pattern: self.pattern(),
                    nodes: vec![
                        d.from.clone(),
                        d.to.clone(),
                        d.via.clone(),
                        back.via.clone(),
                    ],
                    description: format!(
                        "{} and {} exchange events both ways ({} and {}): an action/response pair",
                        name(topo, &d.from),
                        name(topo, &d.to),
                        name(topo, &d.via),
                        name(topo, &back.via)
                    ),
                });
            }
        }
        out.dedup_by(|a, b| a.nodes[..2] == b.nodes[..2]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    #[test]
    fn request_and_reply_destinations() {
        let t = topo(&[
            ("s:wallet", "d:req", Publish, 3),
            ("d:req", "s:identity", Consume, 3),
            ("s:identity", "d:reply", Publish, 3),
            ("d:reply", "s:wallet", Consume, 3),
        ]);
        let f = ActionResponse.check(&t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].nodes[..2],
            ["s:identity".to_string(), "s:wallet".to_string()]
        );
        let one_way = topo(&[("s:a", "d:x", Publish, 1), ("d:x", "s:b", Consume, 1)]);
        assert!(ActionResponse.check(&one_way).is_empty());
    }
}
