use cached_redis::redis_cached;

struct Db;

#[redis_cached(domain = "acg-lines")]
fn acg_lines(lat: u32, db: &Db) -> Vec<u32> {
    let _ = db;
    vec![lat]
}

fn main() {
    let _ = acg_lines(1, &Db);
}
