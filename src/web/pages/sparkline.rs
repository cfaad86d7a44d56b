//! Sparklines: per-minute series folded into at most [`MAX_POINTS`] buckets, drawn as the
//! points of an SVG polyline (numbers only). Pure.

use super::format;
use crate::model::TimeWindow;
use crate::model::{Figures, MinuteRow};
use std::collections::BTreeMap;

pub const MAX_POINTS: usize = 60;
pub const WIDTH: f64 = 160.0;
pub const HEIGHT: f64 = 32.0;

pub struct Spark {
    pub label: &'static str,
    /// The whole window's figure, formatted (total, or the mean for delays).
    pub summary: String,
    /// `x,y` pairs for `<polyline points>`.
    pub points: String,
    pub bad: bool,
}

fn polyline(values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0, f64::max);
    let step = if values.len() > 1 {
        WIDTH / (values.len() - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = if max > 0.0 {
                HEIGHT - 2.0 - (v / max) * (HEIGHT - 4.0)
            } else {
                HEIGHT - 2.0
            };
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Folds minutes into buckets spanning the window: (count, errors, delay sum, delay count).
fn buckets(rows: &BTreeMap<i64, MinuteRow>, window: TimeWindow) -> Vec<MinuteRow> {
    let (first, last) = window.minutes();
    let minutes = (last - first + 1).max(1) as usize;
    let n = minutes.min(MAX_POINTS);
    let mut out = vec![MinuteRow::default(); n];
    for (minute, row) in rows.range(first..=last) {
        let b = ((minute - first) as usize * n / minutes).min(n - 1);
        out[b].count += row.count;
        out[b].errors += row.errors;
        out[b].delay_sum_micros += row.delay_sum_micros;
        out[b].delay_count += row.delay_count;
    }
    out
}

/// Throughput, errors and mean delay of one node over the window.
pub fn sparks(rows: &BTreeMap<i64, MinuteRow>, window: TimeWindow, service: bool) -> Vec<Spark> {
    let b = buckets(rows, window);
    let total = |f: fn(&MinuteRow) -> i64| b.iter().map(f).sum::<i64>();
    let (count, errors) = (total(|r| r.count), total(|r| r.errors));
    let (dsum, dcount) = (total(|r| r.delay_sum_micros), total(|r| r.delay_count));
    let delays: Vec<f64> = b
        .iter()
        .map(|r| {
            if r.delay_count > 0 {
                r.delay_sum_micros as f64 / r.delay_count as f64
            } else {
                0.0
            }
        })
        .collect();
    vec![
        Spark {
            label: if service {
                "Spans"
            } else {
                "Messages in (published or routed)"
            },
            summary: count.to_string(),
            points: polyline(&b.iter().map(|r| r.count as f64).collect::<Vec<_>>()),
            bad: false,
        },
        Spark {
            label: if service {
                "Error spans"
            } else {
                "Consume errors (failed, nacked, expired, dead-lettered)"
            },
            summary: errors.to_string(),
            points: polyline(&b.iter().map(|r| r.errors as f64).collect::<Vec<_>>()),
            bad: errors > 0,
        },
        Spark {
            label: if service {
                "Mean delay of what it consumes"
            } else {
                "Mean publish-to-consume delay"
            },
            summary: if dcount > 0 {
                format::micros(dsum as f64 / dcount as f64)
            } else {
                "–".to_string()
            },
            points: polyline(&delays),
            bad: false,
        },
    ]
}

/// The figures a broker reported for a node over the window, one line per figure it reported:
/// each bucket shows the last poll in it (depths and rates are readings, not sums).
pub fn broker_sparks(history: &BTreeMap<i64, Figures>, window: TimeWindow) -> Vec<Spark> {
    type Pick = fn(&Figures) -> Option<f64>;
    let figures: [(&'static str, Pick, bool); 9] = [
        ("Depth (ready)", |f| f.depth.map(|v| v as f64), true),
        ("Unacked", |f| f.unacked.map(|v| v as f64), false),
        ("Consumers", |f| f.consumers.map(|v| v as f64), false),
        ("Published /s", |f| f.publish_rate, false),
        ("Delivered /s", |f| f.deliver_rate, false),
        ("Redelivered /s", |f| f.redeliver_rate, true),
        ("Pending", |f| f.pending.map(|v| v as f64), true),
        ("Ack pending", |f| f.ack_pending.map(|v| v as f64), false),
        ("Dead letters", |f| f.dead_letters.map(|v| v as f64), true),
    ];
    let (first, last) = window.minutes();
    let minutes = (last - first + 1).max(1) as usize;
    let n = minutes.min(MAX_POINTS);
    let mut out = Vec::new();
    for (label, pick, bad_when_growing) in figures {
        let mut buckets: Vec<Option<f64>> = vec![None; n];
        for (minute, f) in history.range(first..=last) {
            if let Some(v) = pick(f) {
                buckets[((minute - first) as usize * n / minutes).min(n - 1)] = Some(v);
            }
        }
        let Some(latest) = buckets.iter().rev().flatten().next().copied() else {
            continue;
        };
        let values: Vec<f64> = buckets.iter().map(|v| v.unwrap_or(0.0)).collect();
        let earliest = buckets.iter().flatten().next().copied().unwrap_or(latest);
        out.push(Spark {
            label,
            summary: if latest.fract() == 0.0 {
                format!("{latest:.0}")
            } else {
                format!("{latest:.1}")
            },
            points: polyline(&values),
            bad: bad_when_growing && latest > earliest && latest > 0.0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_fold_into_buckets_and_polylines() {
        let window = TimeWindow::new(0, 120 * 60_000_000_000).unwrap();
        let mut rows = BTreeMap::new();
        rows.insert(
            0,
            MinuteRow {
                count: 4,
                errors: 1,
                delay_sum_micros: 100,
                delay_count: 1,
            },
        );
        rows.insert(
            1,
            MinuteRow {
                count: 2,
                ..Default::default()
            },
        );
        rows.insert(
            119,
            MinuteRow {
                count: 6,
                ..Default::default()
            },
        );
        let b = buckets(&rows, window);
        assert_eq!(b.len(), MAX_POINTS);
        assert_eq!((b[0].count, b[59].count), (6, 6));
        let s = sparks(&rows, window, true);
        assert_eq!(s[0].summary, "12");
        assert!(s[1].bad);
        assert_eq!(s[2].summary, "100 µs");
        assert_eq!(polyline(&[0.0, 1.0]), "0.0,30.0 160.0,2.0");
        assert_eq!(polyline(&[0.0]), "0.0,30.0");
    }

    #[test]
    fn broker_figures_show_their_last_reading_and_growth() {
        let window = TimeWindow::new(0, 10 * 60_000_000_000).unwrap();
        let mut history = BTreeMap::new();
        for (minute, depth) in [(0, 2), (4, 9), (9, 30)] {
            history.insert(
                minute,
                Figures {
                    depth: Some(depth),
                    publish_rate: Some(1.5),
                    ..Figures::default()
                },
            );
        }
        let s = broker_sparks(&history, window);
        let labels: Vec<&str> = s.iter().map(|s| s.label).collect();
        assert_eq!(labels, vec!["Depth (ready)", "Published /s"]);
        assert_eq!((s[0].summary.as_str(), s[0].bad), ("30", true));
        assert_eq!((s[1].summary.as_str(), s[1].bad), ("1.5", false));
        assert!(broker_sparks(&BTreeMap::new(), window).is_empty());
    }
}
