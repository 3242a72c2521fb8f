use cached_redis::redis_cached;

#[redis_cached(domain = "natal")]
fn natal(day: u32, place: &str) -> u32 {
    day + place.len() as u32
}

struct Charts;

impl Charts {
    // A method's companions are asked for: an impl for a trait could hold no others.
    #[redis_cached(domain = "transit")]
    fn transit(&self, day: u32) -> u32 {
        day
    }
}

fn main() {
    // The companions take the function's own arguments.
    let _ = natal::key("7", "paris");
    // `warm` takes them as one item per call: a tuple for several.
    let _ = natal::warm([7u32], 2, |_| {});
    let _ = Charts.transit_key(7);
}
