#![deny(warnings, clippy::all)]
use cached_redis::redis_cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Chart {
    sun: f64,
}

#[derive(Serialize)]
pub struct Req {
    date: String,
}

#[derive(Debug)]
pub struct ChartError;

/// Doc kept.
#[redis_cached(domain = "natal", ttl = 3600)]
pub async fn natal_chart(req: &Req) -> Result<Chart, ChartError> {
    if req.date.is_empty() {
        return Err(ChartError);
    }
    Ok(Chart { sun: 1.0 })
}

pub struct Db;

#[redis_cached(domain = "acg-lines", ttl = "15m", version = "v2", skip(db))]
fn acg_lines(params: u32, db: &Db) -> Vec<u32> {
    let _ = db;
    vec![params]
}

#[redis_cached(domain = "batch", segments(size), hash_len = 12)]
fn batch(size: usize, items: Vec<u8>) -> Option<usize> {
    Some(size + items.len())
}

struct Svc {
    n: u32,
}
impl Svc {
    #[redis_cached(domain = "svc")]
    fn get(&self, x: u32) -> u32 {
        self.n + x
    }
    #[redis_cached(domain = "svc")]
    async fn get_mut(&mut self, x: u32) -> u32 {
        self.n += 1;
        self.n + x
    }
}

#[redis_cached(domain = "gen")]
fn generic<T: Serialize + Clone + serde::de::DeserializeOwned>(t: T) -> T {
    t
}

#[tokio::test]
async fn smoke() {
    let r = Req { date: "x".into() };
    assert_eq!(natal_chart(&r).await.unwrap(), Chart { sun: 1.0 });
    assert_eq!(acg_lines(3, &Db), vec![3]);
    assert_eq!(batch(2, vec![1]), Some(3));
    let mut s = Svc { n: 1 };
    assert_eq!(s.get(1), 2);
    assert_eq!(s.get_mut(1).await, 3);
    assert_eq!(generic(5u8), 5);
}
