//! A large trace's rows as compact data for the trace view's script: the page holds the first
//! rows as HTML and `static/app/trace.js` builds the others from this data as they scroll into
//! view (the same markup as `templates/trace.html`), so the browser parses a fraction of the
//! markup before the view can be used. Pure; the text is inert inside a
//! `<script type="application/json">` element.

use super::script_json::ScriptJson;
use super::waterfall::Waterfall;
use serde::Serialize;
use std::collections::HashMap;

/// Rows a large trace's page holds as HTML: more than a tall screen shows.
pub const FIRST_ROWS: usize = 60;
/// The height of a closed row in the style sheet (`.wf-row`), for the space the rows the script
/// has not built yet take.
pub const ROW_PX: usize = 41;

/// Bits of a row's flags.
const ERROR: u8 = 1;
const PUBLISH: u8 = 2;
const CONSUME: u8 = 4;
const FLIP: u8 = 8;

#[derive(Serialize)]
struct Data<'a> {
    /// Service names, by the index rows carry.
    services: Vec<&'a str>,
    rows: Vec<RowData<'a>>,
}

/// One row: span id, depth, colour, flags, service index, operation, error reason, status
/// message, bar left and width (percent of the trace), duration, folded inner spans, the
/// outer row's index (-1: none), the hop from its publish, responses (reply consume's span id,
/// service, round trip), and the text find matches besides what the row shows (attributes
/// and event names).
#[derive(Serialize)]
struct RowData<'a>(
    &'a str,
    usize,
    usize,
    u8,
    usize,
    &'a str,
    &'a str,
    &'a str,
    f64,
    f64,
    &'a str,
    usize,
    i64,
    Option<HopData<'a>>,
    Vec<(&'a str, &'a str, &'a str)>,
    String,
);

/// The publish's row index (-1: not in the rows), the broker segment's left and width
/// (percent), and the delay from publish to consume.
#[derive(Serialize)]
struct HopData<'a>(i64, f64, f64, &'a str);

fn number(pct: &str) -> f64 {
    pct.parse().unwrap_or(0.0)
}

/// Every row of `view` as compact data.
pub fn data(view: &Waterfall) -> ScriptJson {
    let index: HashMap<&str, i64> = view
        .rows
        .iter()
        .enumerate()
        .map(|(k, r)| (r.span_id.as_str(), k as i64))
        .collect();
    let services: HashMap<(&str, &str), usize> = view
        .services
        .iter()
        .enumerate()
        .map(|(k, s)| ((s.0.as_str(), s.1.as_str()), k))
        .collect();
    let rows = view
        .rows
        .iter()
        .map(|r| {
            let mut flags = 0;
            for (on, bit) in [
                (r.error, ERROR),
                (r.role == "publish", PUBLISH),
                (r.role == "consume", CONSUME),
                (r.flip_text, FLIP),
            ] {
                if on {
                    flags |= bit;
                }
            }
            let mut text = String::new();
            for (k, v) in &r.attributes {
                text.push_str(k);
                text.push(' ');
                text.push_str(v);
                text.push(' ');
            }
            for e in &r.events {
                text.push_str(&e.name);
                text.push(' ');
            }
            RowData(
                &r.span_id,
                r.depth,
                r.color,
                flags,
                services
                    .get(&(r.service.as_str(), r.service_id.as_str()))
                    .copied()
                    .unwrap_or(0),
                &r.name,
                &r.reason,
                &r.status_message,
                number(&r.left_pct),
                number(&r.width_pct),
                &r.duration,
                r.folds,
                index.get(r.folded_into.as_str()).copied().unwrap_or(-1),
                r.hop.as_ref().map(|h| {
                    HopData(
                        index.get(h.from_span_id.as_str()).copied().unwrap_or(-1),
                        number(&h.gap_left_pct),
                        number(&h.gap_width_pct),
                        &h.delay,
                    )
                }),
                r.responses
                    .iter()
                    .map(|x| (x.0.as_str(), x.1.as_str(), x.2.as_str()))
                    .collect(),
                text,
            )
        })
        .collect();
    ScriptJson::of(&Data {
        services: view.services.iter().map(|s| s.0.as_str()).collect(),
        rows,
    })
}

/// The height the rows after the first `shown` take before the script builds them: those not
/// folded into another (folded rows start hidden).
pub fn rest_px(view: &Waterfall, shown: usize) -> usize {
    view.rows
        .iter()
        .skip(shown)
        .filter(|r| r.folded_into.is_empty())
        .count()
        * ROW_PX
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::sample::{consume, publish, Change};
    use crate::web::pages::waterfall;

    #[test]
    fn rows_carry_their_hop_fold_and_service_by_index() {
        let w = waterfall::build(
            vec![
                publish(0xd1).at(0, 10).by("orders"),
                publish(0xd2).under(0xd1).at(1, 9).by("orders"),
                consume(0xd3).under(0xd2).at(20, 30).by("shipping"),
            ],
            |_, _| Vec::new(),
        );
        let v: serde_json::Value = serde_json::from_str(&data(&w).to_string()).unwrap();
        assert_eq!(v["services"], serde_json::json!(["orders", "shipping"]));
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        // The inner publish is folded into the outer row (index 0).
        assert_eq!(
            (rows[1][0].as_str(), rows[1][12].as_i64()),
            (Some("00000000000000d2"), Some(0))
        );
        assert_eq!(rows[0][11], 1, "one inner span folded");
        // The consume: shipping's index, a consume, its hop from the outer publish's row.
        assert_eq!(rows[2][4], 1);
        assert_eq!(
            rows[2][3].as_u64().unwrap() & CONSUME as u64,
            CONSUME as u64
        );
        let from = &w.rows[2].hop.as_ref().unwrap().from_span_id;
        let at = w.rows.iter().position(|r| &r.span_id == from).unwrap();
        assert_eq!(rows[2][13][0], at);
        assert_eq!(rows[2][13][3], "19.0 ms");
        assert!(
            rows[2][15].as_str().unwrap().contains("k v"),
            "{}",
            rows[2][15]
        );
        assert_eq!(rest_px(&w, 1), ROW_PX, "the folded row takes no room");
    }
}
