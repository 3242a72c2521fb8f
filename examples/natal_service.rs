//! An HTTP service whose expensive natal-chart computation is cached with
//! `#[redis_cached]`, exposing Prometheus metrics.
//!
//! ```sh
//! cargo run --example natal_service                      # memory cache
//! ENABLE_REDIS_CACHE=1 REDIS_URL=redis://127.0.0.1:6379 cargo run --example natal_service
//! curl 'http://127.0.0.1:3000/natal?born=1990-01-01T12:00:00Z&lat=51.48&lon=0'
//! curl http://127.0.0.1:3000/metrics
//! ```
//!
//! `NATAL_ADDR` sets the listening address (default `127.0.0.1:3000`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cached_redis::{Runtime, redis_cached};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

/// What `/natal` takes as query parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatalRequest {
    pub born: String,
    pub lat: f64,
    pub lon: f64,
}

/// What `/natal` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub born: String,
    pub sun_longitude: f64,
    pub ascendant: f64,
}

#[derive(Debug)]
pub struct ChartError(String);

/// Stands in for an ephemeris computation of some tens of milliseconds.
#[redis_cached(domain = "natal", ttl = "1h", runtime = rt, skip(rt))]
pub async fn natal_chart(req: NatalRequest, rt: &Runtime) -> Result<Chart, ChartError> {
    if req.born.is_empty() || !(-90.0..=90.0).contains(&req.lat) {
        return Err(ChartError(
            "born is required and lat must be within ±90°".into(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let seed = req.born.bytes().fold(7_u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    Ok(Chart {
        born: req.born.clone(),
        sun_longitude: (seed % 36_000) as f64 / 100.0,
        ascendant: (req.lat + req.lon).abs() % 360.0,
    })
}

struct AppState {
    runtime: Runtime,
    metrics: PrometheusHandle,
}

/// The service's routes: `GET /natal?born=…&lat=…&lon=…` and `GET /metrics`.
pub fn app(runtime: Runtime, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/natal", get(natal))
        .route("/metrics", get(render_metrics))
        .with_state(Arc::new(AppState { runtime, metrics }))
}

async fn natal(
    State(state): State<Arc<AppState>>,
    Query(req): Query<NatalRequest>,
) -> Result<Json<Chart>, (StatusCode, String)> {
    natal_chart(req, &state.runtime)
        .await
        .map(Json)
        .map_err(|ChartError(reason)| (StatusCode::BAD_REQUEST, reason))
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> String {
    state.metrics.render()
}

/// Installs the Prometheus recorder for this process. Timings are real
/// histograms (buckets from 50 µs to 10 s), which add up across instances
/// as summaries cannot.
pub fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    const BUCKETS: &[f64] = &[
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.1, 0.25, 1.0, 10.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?;
    Ok(builder.install_recorder()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = install_metrics()?;
    let runtime = Runtime::from_env()?;
    let addr = std::env::var("NATAL_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "natal service on http://{addr} (Redis {})",
        if runtime.config().redis_enabled() {
            "on"
        } else {
            "off"
        }
    );
    axum::serve(listener, app(runtime.clone(), metrics)).await?;
    runtime.flush(Duration::from_secs(5)).await;
    Ok(())
}
