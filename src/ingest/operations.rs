//! The services and operations (span name and kind) seen since the process started, for
//! Jaeger's service and operation lists. Each request's distinct names are gathered on the
//! decoding thread and added under the lock once per request; the catalogue holds at most
//! [`MAX_OPERATIONS`] entries (past that, new names are left out of the lists, never out of
//! the store).

use crate::model::SpanKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Entries (service, operation, kind) kept at most.
pub const MAX_OPERATIONS: usize = 50_000;

/// One operation of a service: its span name and kind.
pub type Operation = (String, SpanKind);

#[derive(Default)]
struct Inner {
    by_service: BTreeMap<String, BTreeSet<Operation>>,
    len: usize,
}

#[derive(Default)]
pub struct Operations {
    // A std Mutex: held for one request's few new names or one copy, never across an await.
    inner: Mutex<Inner>,
}

impl Operations {
    /// Adds what a request's spans name (services, span names and kinds).
    pub fn note<'a>(&self, spans: impl Iterator<Item = &'a crate::model::Span>) {
        let mut distinct: foldhash::HashSet<(&str, &str, SpanKind)> = Default::default();
        for s in spans {
            distinct.insert((&s.service.name, &s.name, s.kind));
        }
        if distinct.is_empty() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for (service, name, kind) in distinct {
            let full = inner.len >= MAX_OPERATIONS;
            let known = inner
                .by_service
                .get(service)
                .is_some_and(|ops| ops.contains(&(name.to_string(), kind)));
            if known || full {
                continue;
            }
            inner
                .by_service
                .entry(service.to_string())
                .or_default()
                .insert((name.to_string(), kind));
            inner.len += 1;
        }
    }

    /// Every service seen.
    pub fn services(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.by_service.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A service's operations, sorted by name then kind.
    pub fn of(&self, service: &str) -> Vec<Operation> {
        self.inner
            .lock()
            .ok()
            .and_then(|i| {
                i.by_service
                    .get(service)
                    .map(|o| o.iter().cloned().collect())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing;

    #[test]
    fn names_are_kept_once_per_service_and_kind() {
        let ops = Operations::default();
        let named = |id, name: &str, kind| crate::model::Span {
            name: name.to_string(),
            ..testing::span(1, id, None, "checkout", kind)
        };
        let a = named(1, "GET /cart", SpanKind::Server);
        let b = named(2, "publish orders", SpanKind::Producer);
        ops.note([&a, &b, &a].into_iter());
        ops.note([&a].into_iter());
        assert_eq!(ops.services(), vec!["checkout".to_string()]);
        assert_eq!(
            ops.of("checkout"),
            vec![
                ("GET /cart".to_string(), SpanKind::Server),
                ("publish orders".to_string(), SpanKind::Producer)
            ]
        );
        assert!(ops.of("nobody").is_empty());
    }
}
