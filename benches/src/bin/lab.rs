//! The lab: runs every experiment and writes `reports/`.
fn main() {
    println!("twolevel lab: no experiments yet");
}
