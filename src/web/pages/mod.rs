//! HTML pages: each file holds a handler and the template struct it returns.

pub mod broker_state;
pub mod brokers;
pub mod changes;
pub mod format;
pub mod journeys;
pub mod login;
pub mod map;
pub mod node;
pub mod script_json;
pub mod sparkline;
pub mod trace;
pub mod trace_rows;
pub mod traces;
pub mod waterfall;
pub mod window;
