//! The tour: the article's programs, in Rust, with the results it states.
//!
//! Run it with `cargo run --release --example tour`. Each part prints what
//! the article's Python program prints, and one line on what it teaches.
//! Each part is a module of its own, run in the article's order.

mod part2;

fn main() -> Result<(), mp::Error> {
    mp::init();

    part2::run()?;
    Ok(())
}
