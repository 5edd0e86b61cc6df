//! One cfg alias: `transport`, set when any push transport (`sse`, `long-poll`, `ws`) is on,
//! so the crate writes `#[cfg(transport)]` instead of repeating the three features.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(transport)");
    let on = |feature: &str| std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some();
    if on("SSE") || on("LONG_POLL") || on("WS") {
        println!("cargo::rustc-cfg=transport");
    }
}
