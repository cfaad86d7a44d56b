//! AsyncAPI documents, 2.0–2.6 and 3.0, YAML or JSON, read into what their services declare:
//! the channels (an address, and the messaging system when the document says it) and each
//! service's operations on them (send or receive).
//!
//! Conventions (README, "Declared architecture"):
//! - The service of an operation is its `x-switchyard-service`, else the document's
//!   `x-switchyard-service`, else the document's `info.title`.
//! - 2.x names operations from the other side: a channel's `subscribe` is what the
//!   application sends, its `publish` what it receives.
//! - A channel's system is its `x-switchyard-system`, else that of its servers (their own
//!   `x-switchyard-system`, else their protocol: `amqp` is RabbitMQ, `kafka` Kafka, `nats`
//!   NATS), else the protocol of its bindings, else the one system all the document's servers
//!   share; none when unknown (then it matches a destination of that name on any system).
//! - A 3.0 channel with no address (or `null`: unknown) is not compared.

use serde_json::Value;

/// The largest document read (YAML or JSON); larger files are refused at start.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// How many `$ref`s are followed for one object (a loop of references ends there).
const MAX_REF_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Send,
    Receive,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Send => "send",
            Action::Receive => "receive",
        }
    }
}

/// A declared channel. An address may hold `{parameters}`, each matching any text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub address: String,
    pub system: Option<String>,
}

/// One service's operation on a channel (an index into the declaration's channels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub service: String,
    pub action: Action,
    pub channel: usize,
}

/// What one document declares.
#[derive(Clone, Debug, PartialEq)]
pub struct Declaration {
    /// Where it was read from, as given (a file name).
    pub source: String,
    /// The document's `asyncapi` version.
    pub version: String,
    /// The document's service (see the module's conventions).
    pub service: String,
    pub channels: Vec<Channel>,
    pub operations: Vec<Operation>,
}

/// Reads one document; the error says what is wrong and where (without the source's name,
/// which the caller adds).
pub fn parse(source: &str, text: &str) -> Result<Declaration, String> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "{} bytes, over the limit of {} MiB",
            text.len(),
            MAX_DOCUMENT_BYTES / 1024 / 1024
        ));
    }
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
    };
    if !doc.is_object() {
        return Err("not an AsyncAPI document (the top level is not a mapping)".into());
    }
    let version = match doc.get("asyncapi") {
        Some(Value::String(v)) => v.clone(),
        Some(other) => return Err(format!("`asyncapi` is {other}, not a version string")),
        None => return Err("no `asyncapi` version: not an AsyncAPI document".into()),
    };
    let service = text_at(&doc, "x-switchyard-service")
        .or_else(|| doc.get("info").and_then(|i| text_at(i, "title")))
        .filter(|s| !s.trim().is_empty())
        .ok_or("no service: give `info.title` or `x-switchyard-service`")?;
    let mut out = Declaration {
        source: source.to_string(),
        version: version.clone(),
        service,
        channels: Vec::new(),
        operations: Vec::new(),
    };
    let servers = Servers::of(&doc)?;
    if is_v2(&version) {
        read_v2(&doc, &servers, &mut out)?;
    } else if version.starts_with("3.0.") {
        read_v3(&doc, &servers, &mut out)?;
    } else {
        return Err(format!(
            "asyncapi {version:?} is not read: 2.0 to 2.6 and 3.0 are"
        ));
    }
    Ok(out)
}

fn is_v2(version: &str) -> bool {
    let mut parts = version.split('.');
    parts.next() == Some("2")
        && parts
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m <= 6)
}

fn text_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The messaging system (as spans name it) of an AsyncAPI protocol or binding name.
pub fn protocol_system(protocol: &str) -> Option<&'static str> {
    match protocol.to_ascii_lowercase().as_str() {
        "amqp" | "amqps" => Some("rabbitmq"),
        "kafka" | "kafka-secure" => Some("kafka"),
        "nats" => Some("nats"),
        _ => None,
    }
}

/// The document's servers by name, each with its system when known.
struct Servers {
    by_name: Vec<(String, Option<String>)>,
}

impl Servers {
    fn of(doc: &Value) -> Result<Servers, String> {
        let mut by_name = Vec::new();
        let Some(map) = doc.get("servers") else {
            return Ok(Servers { by_name });
        };
        let map = map.as_object().ok_or("`servers` is not a mapping")?;
        for (name, server) in map {
            let server = resolve(doc, server)?;
            let system = text_at(server, "x-switchyard-system").or_else(|| {
                server
                    .get("protocol")
                    .and_then(Value::as_str)
                    .and_then(protocol_system)
                    .map(str::to_string)
            });
            by_name.push((name.clone(), system));
        }
        Ok(Servers { by_name })
    }

    fn system(&self, name: &str) -> Option<String> {
        self.by_name
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| s.clone())
    }

    /// The system every server shares, if there is one.
    fn common(&self) -> Option<String> {
        let first = self.by_name.first()?.1.clone()?;
        self.by_name
            .iter()
            .all(|(_, s)| s.as_deref() == Some(first.as_str()))
            .then_some(first)
    }
}

/// Follows a local `$ref` (`#/a/b`) to the object it names.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..MAX_REF_DEPTH {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return Ok(v);
        };
        let pointer = r
            .strip_prefix('#')
            .ok_or_else(|| format!("reference {r:?} is not local to the document"))?;
        v = doc
            .pointer(pointer)
            .ok_or_else(|| format!("reference {r:?} names nothing"))?;
    }
    Err("references nested too deep (a loop?)".into())
}

/// A channel's system from its extension, its servers, its bindings, or the document's.
fn channel_system(
    doc: &Value,
    channel: &Value,
    servers: &Servers,
    v3: bool,
) -> Result<Option<String>, String> {
    if let Some(s) = text_at(channel, "x-switchyard-system") {
        return Ok(Some(s));
    }
    if let Some(list) = channel.get("servers").and_then(Value::as_array) {
        for s in list {
            let name = if v3 {
                match s.get("$ref").and_then(Value::as_str) {
                    Some(r) => r.rsplit('/').next().unwrap_or_default().to_string(),
                    None => continue,
                }
            } else {
                s.as_str().unwrap_or_default().to_string()
            };
            if let Some(system) = servers.system(&unescape(&name)) {
                return Ok(Some(system));
            }
        }
    }
    if let Some(bindings) = channel.get("bindings") {
        let bindings = resolve(doc, bindings)?;
        if let Some(map) = bindings.as_object() {
            if let Some(s) = map.keys().find_map(|k| protocol_system(k)) {
                return Ok(Some(s.to_string()));
            }
        }
    }
    Ok(servers.common())
}

/// A JSON pointer segment's text (`~1` is `/`, `~0` is `~`).
fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

fn service_of(op: &Value, doc_service: &str) -> String {
    text_at(op, "x-switchyard-service")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| doc_service.to_string())
}

fn read_v2(doc: &Value, servers: &Servers, out: &mut Declaration) -> Result<(), String> {
    let Some(channels) = doc.get("channels") else {
        return Ok(());
    };
    let channels = channels.as_object().ok_or("`channels` is not a mapping")?;
    for (address, item) in channels {
        let item = resolve(doc, item).map_err(|e| format!("channels.{address}: {e}"))?;
        if !item.is_object() {
            return Err(format!("channels.{address} is not a mapping"));
        }
        let system = channel_system(doc, item, servers, false)
            .map_err(|e| format!("channels.{address}: {e}"))?;
        let index = out.channels.len();
        out.channels.push(Channel {
            address: address.clone(),
            system,
        });
        // 2.x speaks from the other side: others subscribe to what the application sends.
        for (key, action) in [("subscribe", Action::Send), ("publish", Action::Receive)] {
            if let Some(op) = item.get(key) {
                let op = resolve(doc, op).map_err(|e| format!("channels.{address}.{key}: {e}"))?;
                out.operations.push(Operation {
                    service: service_of(op, &out.service),
                    action,
                    channel: index,
                });
            }
        }
    }
    Ok(())
}

fn read_v3(doc: &Value, servers: &Servers, out: &mut Declaration) -> Result<(), String> {
    let mut ids: Vec<(String, Option<usize>)> = Vec::new();
    if let Some(channels) = doc.get("channels") {
        let channels = channels.as_object().ok_or("`channels` is not a mapping")?;
        for (id, channel) in channels {
            let channel = resolve(doc, channel).map_err(|e| format!("channels.{id}: {e}"))?;
            if !channel.is_object() {
                return Err(format!("channels.{id} is not a mapping"));
            }
            let index = match channel.get("address") {
                Some(Value::String(address)) => {
                    let system = channel_system(doc, channel, servers, true)
                        .map_err(|e| format!("channels.{id}: {e}"))?;
                    out.channels.push(Channel {
                        address: address.clone(),
                        system,
                    });
                    Some(out.channels.len() - 1)
                }
                None | Some(Value::Null) => None,
                Some(other) => {
                    return Err(format!(
                        "channels.{id}.address is {other}, not a string or null"
                    ))
                }
            };
            ids.push((id.clone(), index));
        }
    }
    let Some(operations) = doc.get("operations") else {
        return Ok(());
    };
    let operations = operations
        .as_object()
        .ok_or("`operations` is not a mapping")?;
    for (id, op) in operations {
        let op = resolve(doc, op).map_err(|e| format!("operations.{id}: {e}"))?;
        let action = match op.get("action").and_then(Value::as_str) {
            Some("send") => Action::Send,
            Some("receive") => Action::Receive,
            other => {
                return Err(format!(
                    "operations.{id}.action is {}, not send or receive",
                    other.map_or("missing".to_string(), |a| format!("{a:?}"))
                ))
            }
        };
        let target = op
            .get("channel")
            .and_then(|c| c.get("$ref"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("operations.{id}.channel is not a $ref to a channel"))?;
        let channel_id = target
            .strip_prefix("#/channels/")
            .map(unescape)
            .ok_or_else(|| format!("operations.{id}.channel: {target:?} is not #/channels/..."))?;
        let index = ids
            .iter()
            .find(|(c, _)| *c == channel_id)
            .map(|(_, i)| *i)
            .ok_or_else(|| format!("operations.{id}.channel: no channel {channel_id:?}"))?;
        if let Some(channel) = index {
            out.operations.push(Operation {
                service: service_of(op, &out.service),
                action,
                channel,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"
asyncapi: 2.6.0
info: {title: billing, version: 1.0.0}
servers:
  rabbit: {url: "amqp://localhost:5672", protocol: amqp}
channels:
  order.created:
    publish:
      message: {payload: {type: object}}
  invoice.issued:
    subscribe:
      message: {payload: {type: object}}
  audit.events:
    subscribe:
      x-switchyard-service: audit
"#;

    #[test]
    fn v2_publish_is_receive_and_subscribe_is_send() {
        let d = parse("billing.yaml", V2).unwrap();
        assert_eq!(d.service, "billing");
        assert_eq!(d.version, "2.6.0");
        let ops: Vec<(String, Action, String, Option<String>)> = d
            .operations
            .iter()
            .map(|o| {
                let c = &d.channels[o.channel];
                (
                    o.service.clone(),
                    o.action,
                    c.address.clone(),
                    c.system.clone(),
                )
            })
            .collect();
        let rabbit = Some("rabbitmq".to_string());
        assert!(ops.contains(&(
            "billing".into(),
            Action::Receive,
            "order.created".into(),
            rabbit.clone()
        )));
        assert!(ops.contains(&(
            "billing".into(),
            Action::Send,
            "invoice.issued".into(),
            rabbit.clone()
        )));
        assert!(ops.contains(&("audit".into(), Action::Send, "audit.events".into(), rabbit)));
    }

    #[test]
    fn v3_operations_follow_their_channel_refs() {
        let doc = r##"{
          "asyncapi": "3.0.0",
          "info": {"title": "shop", "version": "1"},
          "x-switchyard-service": "checkout",
          "servers": {"k": {"host": "localhost:9092", "protocol": "kafka"}},
          "channels": {
            "orders": {"address": "orders.{region}", "servers": [{"$ref": "#/servers/k"}]},
            "dyn": {"address": null},
            "ref": {"$ref": "#/components/channels/tasks"}
          },
          "operations": {
            "placeOrder": {"action": "send", "channel": {"$ref": "#/channels/orders"}},
            "work": {"action": "receive", "channel": {"$ref": "#/channels/ref"},
                     "x-switchyard-service": "worker"},
            "dynamic": {"action": "receive", "channel": {"$ref": "#/channels/dyn"}}
          },
          "components": {"channels": {"tasks": {"address": "tasks", "bindings": {"nats": {}}}}}
        }"##;
        let d = parse("shop.json", doc).unwrap();
        assert_eq!(d.service, "checkout");
        assert_eq!(d.channels.len(), 2, "the null address is not compared");
        assert_eq!(d.operations.len(), 2);
        let send = &d.operations[0];
        assert_eq!(
            (send.service.as_str(), send.action),
            ("checkout", Action::Send)
        );
        assert_eq!(d.channels[send.channel].address, "orders.{region}");
        assert_eq!(d.channels[send.channel].system.as_deref(), Some("kafka"));
        let work = &d.operations[1];
        assert_eq!(
            (work.service.as_str(), work.action),
            ("worker", Action::Receive)
        );
        assert_eq!(d.channels[work.channel].system.as_deref(), Some("nats"));
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let err = |text: &str| parse("x", text).unwrap_err();
        assert!(
            err("asyncapi: [").contains("not valid YAML"),
            "{}",
            err("asyncapi: [")
        );
        assert!(err("{\"a\": }").contains("not valid JSON"));
        assert!(err("- 1\n- 2\n").contains("not a mapping"));
        assert!(err("info: {title: a}\n").contains("no `asyncapi`"));
        assert!(err("asyncapi: 1.2.0\ninfo: {title: a}\n").contains("2.0 to 2.6 and 3.0"));
        assert!(err("asyncapi: 2.7.0\ninfo: {title: a}\n").contains("2.0 to 2.6"));
        assert!(err("asyncapi: 3.0.0\ninfo: {version: '1'}\n").contains("no service"));
        let bad_action = "asyncapi: 3.0.0\ninfo: {title: a}\nchannels: {c: {address: c}}\noperations: {o: {action: push, channel: {$ref: '#/channels/c'}}}\n";
        assert!(err(bad_action).contains("operations.o.action is \"push\""));
        let dangling = "asyncapi: 3.0.0\ninfo: {title: a}\noperations: {o: {action: send, channel: {$ref: '#/channels/nope'}}}\n";
        assert!(err(dangling).contains("no channel \"nope\""));
        let looped = "asyncapi: 2.6.0\ninfo: {title: a}\nchannels: {c: {$ref: '#/channels/c'}}\n";
        assert!(err(looped).contains("loop"));
        let big = " ".repeat(MAX_DOCUMENT_BYTES + 1);
        assert!(err(&big).contains("over the limit"));
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        let mut doc = String::from(
            "asyncapi: 2.6.0\ninfo: {title: a}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
        );
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse("bomb.yaml", &doc).unwrap_err();
        assert!(e.contains("not valid YAML"), "{e}");
    }
}
