//! Roofline check of the dose-influence products: in one run, measures a
//! plain parallel streaming read of as many bytes as the matrix holds, then
//! `D w` and `D^T g` on the same matrix, and prints how close each product
//! comes to streaming bandwidth.
//!
//! `cargo run --release -p dosepaint-benches --example roofline`
//!
//! The last line is `spmv_fraction_of_stream=<min of the two ratios>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use dosepaint_benches::{SyntheticScale, synthetic_plan};
use rayon::prelude::*;

const REPEATS: usize = 15;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    median(
        (0..REPEATS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let plan = synthetic_plan(SyntheticScale::Full);
    let d = &plan.influence;
    let (_, cols, vals) = d.to_csr();
    let bytes = d.memory_bytes();
    println!(
        "matrix: {} rows x {} beamlets, {} non-zeros, {:.1} MB, {} threads",
        d.n_rows(),
        d.n_beamlets(),
        d.nnz(),
        bytes as f64 / 1e6,
        rayon::current_num_threads()
    );

    // Streaming read of the same index and value arrays the products read.
    const CHUNK: usize = 1 << 16;
    let stream = time(|| {
        let s: u64 = cols
            .par_chunks(CHUNK)
            .zip(vals.par_chunks(CHUNK))
            .map(|(c, v)| {
                // Integer sums vectorise, so this loop is limited by memory
                // bandwidth, not by floating-point add latency.
                let ci = c.iter().fold(0u32, |a, &x| a.wrapping_add(x));
                let vi = v.iter().fold(0u32, |a, &x| a.wrapping_add(x.to_bits()));
                u64::from(ci) + u64::from(vi)
            })
            .sum();
        black_box(s);
    });
    drop((cols, vals));

    let w = vec![1.0; d.n_beamlets()];
    let g: Vec<f64> = (0..d.n_rows()).map(|r| 1.0 + (r % 5) as f64).collect();
    let mut dose = vec![0.0; d.n_rows()];
    let mut grad = vec![0.0; d.n_beamlets()];
    let forward = time(|| {
        d.dose_into(black_box(&w), &mut dose)
            .expect("lengths match");
    });
    let adjoint = time(|| {
        d.transpose_product_into(black_box(&g), &mut grad)
            .expect("lengths match");
    });

    let gbps = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;
    println!(
        "stream read : {:8.2} ms  {:6.2} GB/s",
        stream.as_secs_f64() * 1e3,
        gbps(stream)
    );
    println!(
        "D w         : {:8.2} ms  {:6.2} GB/s",
        forward.as_secs_f64() * 1e3,
        gbps(forward)
    );
    println!(
        "D^T g       : {:8.2} ms  {:6.2} GB/s",
        adjoint.as_secs_f64() * 1e3,
        gbps(adjoint)
    );
    let ratio = |t: Duration| stream.as_secs_f64() / t.as_secs_f64();
    println!(
        "D w / stream = {:.3}, D^T g / stream = {:.3}",
        ratio(forward),
        ratio(adjoint)
    );
    println!(
        "spmv_fraction_of_stream={:.3}",
        ratio(forward).min(ratio(adjoint))
    );
}
