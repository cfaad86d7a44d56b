//! Lifecycle: open the store, start the receivers and the web server, shut down in stages.

use crate::broker::BrokerConfig;
use crate::cli::{ServeArgs, SyncMode};
use crate::discover::Discovery;
use crate::ingest::{self, Ingest, IngestConfig};
use crate::store::{RetentionConfig, SqliteStore, Store, StoreConfig};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;

/// Concurrent gRPC exports per connection.
const GRPC_STREAMS: u32 = 16;

/// Deadline for in-flight requests to finish once shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub fn store_config(args: &ServeArgs) -> StoreConfig {
    StoreConfig {
        path: args.db.clone(),
        retention: RetentionConfig {
            max_age: args.retention,
            max_bytes: args.retention_size,
        },
        queue_depth: args.queue_depth,
        synchronous: match args.sync {
            SyncMode::Normal => "NORMAL".into(),
            SyncMode::Full => "FULL".into(),
        },
    }
}

/// The broker's configuration `serve` runs with: its own file beside the store's, the same
/// `--sync`.
pub fn broker_config(args: &ServeArgs) -> BrokerConfig {
    BrokerConfig {
        path: BrokerConfig::sibling_path(&args.db),
        synchronous: store_config(args).synchronous,
        max_message_bytes: args.broker_max_message as usize,
        queue_depth: 4_096,
        max_waiters: 1_024,
        max_waiters_per_destination: 256,
        allow_push_to_self: args.broker_allow_push_to_self,
    }
}

/// The bounds of each OTLP request and of those in flight.
pub fn ingest_limits(args: &ServeArgs) -> ingest::limits::Limits {
    ingest::limits::Limits {
        max_spans: args.max_spans_per_request,
        max_decoded_bytes: args.max_decoded,
        memory_bytes: args.ingest_memory,
        max_uploads: args.max_uploads,
        body_timeout: args.body_timeout,
        body_min_rate: args.body_min_rate,
    }
}

/// The bounds of each listener's connections.
fn conn_limits(args: &ServeArgs) -> ingest::conn::ConnLimits {
    ingest::conn::ConnLimits {
        max: args.max_connections,
        idle: args.idle_timeout,
    }
}

/// The span store: ClickHouse with `--clickhouse`, else the SQLite file.
fn open_store(args: &ServeArgs) -> anyhow::Result<Store> {
    match &args.clickhouse {
        Some(text) => {
            let url = crate::store::clickhouse::ClickHouseUrl::parse(text)
                .map_err(|e| anyhow::anyhow!("--clickhouse: {e}"))?;
            crate::store::clickhouse::ClickHouseStore::open(
                &crate::store::clickhouse::ClickHouseConfig {
                    url: url.clone(),
                    queue_depth: args.queue_depth,
                    timeouts: Default::default(),
                    retention: Some(args.retention),
                    retention_size: args.retention_size,
                    settle: args.clickhouse_settle,
                    cluster: args.clickhouse_cluster.clone(),
                },
            )
            .map(Store::new)
            .with_context(|| format!("opening ClickHouse at {url}"))
        }
        None => SqliteStore::open(&store_config(args))
            .map(Store::new)
            .with_context(|| format!("opening {}", args.db.display())),
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Checked before anything starts: a bad --discover value changes nothing.
    let sources = crate::discover::runner::sources(&args.discover).map_err(anyhow::Error::msg)?;
    let declared = std::sync::Arc::new(read_declared(&args.declared)?);
    let guard = args
        .guard_config()
        .and_then(|c| crate::guard::Guard::new(&c))
        .map_err(anyhow::Error::msg)?;
    crate::telemetry::METRICS
        .graph
        .set_max_series(args.metrics_max_series);
    // Refused values are reported by what is wrong, never echoed (they may hold a password).
    let notify_urls = args
        .notify_url
        .iter()
        .map(|u| crate::changes::notify::NotifyUrl::parse(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    // TLS for https receivers, built once (the system's roots read once); a bad --notify-ca
    // stops here, before anything starts.
    let tls = if notify_urls.iter().any(|u| u.https) || args.notify_ca.is_some() {
        let tls = crate::changes::tls::Tls::new(args.notify_ca.as_deref());
        Some(tls.map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    let store = open_store(&args)?;
    let discovery = Discovery::start(sources, args.discover_interval, store.clone());
    let changes = crate::changes::Changes {
        log: Default::default(),
        notify: notify_urls
            .into_iter()
            .map(|u| {
                let tls = tls.clone().filter(|_| u.https);
                crate::changes::notify::Notifier::start(u, tls)
            })
            .collect(),
    };
    let ingest = Ingest::new(
        store.clone(),
        IngestConfig {
            max_body_bytes: args.max_body as usize,
            max_in_flight: args.max_in_flight,
            limits: ingest_limits(&args),
        },
    );

    let tracer = crate::broker::traced::Tracer::to_ingest(ingest.clone());
    let broker = crate::broker::Broker::open(broker_config(&args), tracer.clone())
        .context("opening the broker")?;

    // The change watcher's baseline is read before any listener opens.
    let baseline = crate::changes::watch::baseline(&store, &ingest.counters).await;
    let (otlp_server, otlp_addr) = http_server(
        "OTLP/HTTP",
        args.otlp_http,
        (args.workers, conn_limits(&args), args.body_timeout),
        (
            ingest.clone(),
            broker.clone(),
            discovery.clone(),
            declared.clone(),
            changes.clone(),
        ),
        ingest::http::configure,
        guard.clone(),
    )?;
    let (web_server, web_addr) = http_server(
        "HTTP",
        args.http,
        (args.workers, conn_limits(&args), args.body_timeout),
        (
            ingest.clone(),
            broker.clone(),
            discovery.clone(),
            declared,
            changes.clone(),
        ),
        crate::web::configure,
        guard.with_login_page(),
    )?;
    let grpc_listener = tokio::net::TcpListener::bind(args.otlp_grpc)
        .await
        .with_context(|| format!("binding OTLP/gRPC on {}", args.otlp_grpc))?;
    let grpc_addr = grpc_listener.local_addr()?;
    // Push subscriptions may not deliver to these (unless allowed); pushes start once known.
    broker.listening_on(vec![web_addr, otlp_addr, grpc_addr]);
    let (grpc_stop_tx, grpc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            // Bound what gRPC decodes at once (tonic decodes a message before the handler and
            // its in-flight shield run).
            .max_concurrent_streams(Some(GRPC_STREAMS))
            .concurrency_limit_per_connection(GRPC_STREAMS as usize)
            // A request that takes longer (a stalled message included) is cancelled.
            .timeout(
                ingest
                    .config
                    .limits
                    .body_deadline(ingest.config.max_body_bytes),
            )
            .add_service(tonic::service::interceptor::InterceptedService::new(
                ingest::grpc::service(ingest.clone()),
                guard.grpc_interceptor(),
            ))
            .serve_with_incoming_shutdown(
                ingest::conn::incoming(grpc_listener, conn_limits(&args)),
                async {
                    let _ = grpc_stop_rx.await;
                },
            ),
    );
    let otlp_handle = otlp_server.handle();
    let web_handle = web_server.handle();
    let otlp_task = tokio::spawn(otlp_server);
    let web_task = tokio::spawn(web_server);

    let demo = args
        .demo
        .then(|| tokio::spawn(crate::demo::run(broker.clone())));
    // The embedded broker reports its own state like a discovered broker, at the same pace.
    let reporter = tokio::spawn(crate::broker::observed::report(
        broker.clone(),
        store.clone(),
        args.discover_interval,
    ));
    // New nodes and edges: logged, kept for /changes, posted to --notify-url.
    let watcher = tokio::spawn(crate::changes::watch::run(
        crate::changes::watch::Watch {
            store: store.clone(),
            counters: ingest.counters.clone(),
            log: changes.log.clone(),
            notifiers: changes.notify.clone(),
            interval: args.changes_interval,
        },
        baseline,
    ));
    let listeners = [
        ("HTTP", web_addr),
        ("OTLP/HTTP", otlp_addr),
        ("OTLP/gRPC", grpc_addr),
    ];
    crate::guard::warn_if_exposed(&listeners, &guard);
    let stop = shutdown_signal();
    announce(web_addr, otlp_addr, grpc_addr, &args);
    stop.await;
    tracing::info!("shutting down: no new requests, draining in-flight ones");
    if let Some(d) = demo {
        d.abort();
    }
    reporter.abort();
    watcher.abort();
    // Stage 1: stop accepting, let accepted requests finish (they wait for their commits).
    broker.drain();
    let _ = grpc_stop_tx.send(());
    let drain = async {
        tokio::join!(otlp_handle.stop(true), web_handle.stop(true));
        let _ = tokio::join!(otlp_task, web_task, grpc);
    };
    if tokio::time::timeout(DRAIN_DEADLINE, drain).await.is_err() {
        tracing::warn!("drain deadline passed; closing anyway");
    }
    // Stage 2: stop polling brokers, final commits (broker, its last spans, then the store),
    // then exit.
    tokio::task::spawn_blocking(move || {
        discovery.shutdown();
        broker.shutdown();
        tracer.shutdown();
        store.shutdown()
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// An actix server on `addr` with `routes` behind `guard`; returns it (not yet running) and its
/// bound address.
fn http_server(
    what: &str,
    addr: SocketAddr,
    (workers, conns, request_timeout): (usize, ingest::conn::ConnLimits, Duration),
    (ingest, broker, discovery, declared, changes): (
        Ingest,
        crate::broker::Broker,
        Discovery,
        std::sync::Arc<crate::topology::declared::Declared>,
        crate::changes::Changes,
    ),
    routes: fn(&mut web::ServiceConfig),
    guard: crate::guard::Guard,
) -> anyhow::Result<(actix_web::dev::Server, SocketAddr)> {
    let state = web::Data::new(crate::web::AppState {
        store: ingest.store.clone(),
        counters: ingest.counters.clone(),
        operations: ingest.operations.clone(),
        broker: broker.clone(),
        discovery,
        declared: declared.clone(),
        changes,
    });
    // `/api/topology`'s windows asked recently, built again ahead of the next request.
    let ahead = web::Data::new(crate::web::api::ahead::Ahead::new(
        ingest.store.clone(),
        declared,
    ));
    let (data, broker) = (web::Data::new(ingest), web::Data::new(broker));
    let guard = web::Data::new(guard);
    let app = move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::guard::http::check))
            .app_data(guard.clone())
            .app_data(data.clone())
            .app_data(broker.clone())
            .app_data(state.clone())
            .app_data(ahead.clone())
    };
    let server = HttpServer::new(move || app().configure(routes))
        .workers(workers.max(1))
        // Answers and streamed frames go out as soon as they are written: with Nagle's
        // algorithm the tail of a frame waits for the peer's delayed ACK (up to 40 ms).
        .tcp_nodelay(true)
        // Idle keep-alive connections close; a head must arrive in time; at most `conns.max`
        // connections (actix counts them per worker).
        .keep_alive(conns.idle)
        .client_request_timeout(request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .max_connections(conns.max.div_ceil(workers.max(1)).max(1))
        .on_connect(ingest::http::remember_socket)
        .disable_signals()
        .shutdown_timeout(DRAIN_DEADLINE.as_secs())
        .bind(addr)
        .with_context(|| format!("binding {what} on {addr}"))?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .with_context(|| format!("no {what} address"))?;
    Ok((server.run(), bound))
}

/// The `--declared` documents, each read whole (at most `MAX_DOCUMENT_BYTES`) and parsed; the
/// first bad one is an error naming the file and what is wrong with it.
fn read_declared(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<crate::topology::declared::Declared> {
    use crate::topology::declared::{parse, Declared};
    use std::io::Read;
    let mut out = Declared::default();
    for path in paths {
        let name = path.display().to_string();
        let fail = |what: String| anyhow::anyhow!("--declared {name}: {what}");
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut bytes = Vec::new();
        let limit = parse::MAX_DOCUMENT_BYTES as u64;
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > limit {
            return Err(fail(format!(
                "larger than {} MiB, the most read",
                limit / 1024 / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        // Findings name the file alone; errors the path as given.
        let file_name = path
            .file_name()
            .map_or(name.clone(), |f| f.to_string_lossy().into_owned());
        let doc = parse::parse(&file_name, &text).map_err(fail)?;
        tracing::info!(file = %name, service = %doc.service, version = %doc.version, channels = doc.channels.len(), operations = doc.operations.len(), "declared architecture read");
        out.documents.push(doc);
    }
    Ok(out)
}

/// One JSON line on stdout with the bound addresses (ports chosen by the OS when 0 was asked).
fn announce(web: SocketAddr, otlp_http: SocketAddr, otlp_grpc: SocketAddr, args: &ServeArgs) {
    println!(
        "{}",
        serde_json::json!({"event": "listening", "http": web.to_string(), "otlp_http": otlp_http.to_string(), "otlp_grpc": otlp_grpc.to_string(), "db": args.db.display().to_string()})
    );
    tracing::info!(ui = %format!("http://{web}/"), otlp_http = %otlp_http, otlp_grpc = %otlp_grpc, "switchyard is ready");
}

/// SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the future is
/// first polled: called before the listening line, a SIGTERM sent right after that line (a
/// supervisor, a test) stops the server cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => {},
                _ = ctrl_c => {},
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

/// `switchyard export`: the graph of a database on stdout.
pub fn export(args: crate::cli::ExportArgs) -> anyhow::Result<()> {
    let store = match &args.clickhouse {
        Some(text) => {
            let url = crate::store::clickhouse::ClickHouseUrl::parse(text)
                .map_err(|e| anyhow::anyhow!("--clickhouse: {e}"))?;
            crate::store::clickhouse::ClickHouseStore::open_read_only(
                &url,
                args.clickhouse_cluster.as_deref(),
            )
            .with_context(|| format!("reading ClickHouse at {url}"))?
        }
        None => crate::store::open_read_only(&args.db)?,
    };
    if args.diff {
        return export_diff(&*store, &args);
    }
    let window = crate::model::window::parse_window(
        args.since.as_deref(),
        args.until.as_deref(),
        crate::model::window::now_unix_nanos(),
    )
    .map_err(anyhow::Error::msg)?;
    let rows = store.topology(window)?;
    let topo = crate::topology::build(rows, window);
    let text = match args.format {
        crate::cli::ExportFormat::Dot => crate::export::dot::to_dot(&topo),
        crate::cli::ExportFormat::Json => crate::export::to_json(&topo) + "\n",
        crate::cli::ExportFormat::Asyncapi => {
            crate::export::asyncapi::to_json(&topo, &Default::default())
        }
    };
    use std::io::Write;
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

/// `switchyard export --diff`: what changed between two windows, on stdout.
fn export_diff(
    store: &dyn crate::store::Storage,
    args: &crate::cli::ExportArgs,
) -> anyhow::Result<()> {
    use crate::topology::{build, diff};
    let (base, new) = crate::model::window_pair::parse(
        [args.base_since.as_deref(), args.base_until.as_deref()],
        [args.since.as_deref(), args.until.as_deref()],
        crate::model::window::now_unix_nanos(),
    )
    .map_err(anyhow::Error::msg)?;
    let old = build(store.topology(base)?, base);
    let topo = build(store.topology(new)?, new);
    let d = diff::diff(&old, &topo, &diff::Thresholds::DEFAULT);
    let text = match args.format {
        crate::cli::ExportFormat::Dot => crate::export::diff_dot::to_dot(&topo, &d),
        crate::cli::ExportFormat::Json => serde_json::to_string_pretty(&d)? + "\n",
        crate::cli::ExportFormat::Asyncapi => {
            anyhow::bail!("export --diff writes json or dot, not asyncapi")
        }
    };
    use std::io::Write;
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
