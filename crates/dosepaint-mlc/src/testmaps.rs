//! Reproducible synthetic fluence maps for benchmarks and tests.
//!
//! Two kinds, each fixed by a seed: *smooth* maps (a sum of 3 to 5 Gaussian
//! blobs of random centre, width 1.5 to 5 bixels and amplitude, like an
//! optimised IMRT fluence) and *noisy* maps (independent uniform values in
//! `[0, 1)` per bixel, the hard case for sequencers). The generator is
//! SplitMix64 (Steele, Lea & Flood 2014), so the maps are the same on every
//! platform.

use crate::FluenceMap;

/// SplitMix64 pseudo-random generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The kind of a synthetic map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// Sum of Gaussian blobs.
    Smooth,
    /// Independent uniform values.
    Noisy,
}

/// A smooth-ish map: 3 to 5 Gaussian blobs.
pub fn smooth_map(seed: u64, n_rows: usize, n_cols: usize) -> FluenceMap {
    let mut rng = SplitMix64::new(seed);
    let n_blobs = 3 + (rng.next_u64() % 3) as usize;
    let blobs: Vec<[f64; 4]> = (0..n_blobs)
        .map(|_| {
            [
                rng.next_f64() * n_rows as f64,
                rng.next_f64() * n_cols as f64,
                1.5 + 3.5 * rng.next_f64(),
                0.3 + 0.7 * rng.next_f64(),
            ]
        })
        .collect();
    let mut v = Vec::with_capacity(n_rows * n_cols);
    for r in 0..n_rows {
        for c in 0..n_cols {
            let f: f64 = blobs
                .iter()
                .map(|b| {
                    let (dy, dx) = (r as f64 + 0.5 - b[0], c as f64 + 0.5 - b[1]);
                    b[3] * (-(dx * dx + dy * dy) / (2.0 * b[2] * b[2])).exp()
                })
                .sum();
            v.push(f);
        }
    }
    FluenceMap::new(n_rows, n_cols, v).expect("finite non-negative values")
}

/// A noisy map: uniform values in `[0, 1)`.
pub fn noisy_map(seed: u64, n_rows: usize, n_cols: usize) -> FluenceMap {
    let mut rng = SplitMix64::new(seed ^ 0x05EE_D0F0_015E);
    let v = (0..n_rows * n_cols).map(|_| rng.next_f64()).collect();
    FluenceMap::new(n_rows, n_cols, v).expect("finite non-negative values")
}

/// `count` maps of one kind with seeds `first_seed..first_seed + count`.
pub fn map_set(
    kind: MapKind,
    count: usize,
    first_seed: u64,
    n_rows: usize,
    n_cols: usize,
) -> Vec<FluenceMap> {
    (0..count as u64)
        .map(|s| match kind {
            MapKind::Smooth => smooth_map(first_seed + s, n_rows, n_cols),
            MapKind::Noisy => noisy_map(first_seed + s, n_rows, n_cols),
        })
        .collect()
}
