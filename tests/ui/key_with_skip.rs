use cached_redis::redis_cached;

#[redis_cached(domain = "natal", key = day, skip(db))]
fn natal(day: u32, db: &str) -> u32 {
    let _ = db;
    day
}

fn main() {}
