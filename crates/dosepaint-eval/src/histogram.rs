//! A weighted histogram with fixed-width bins anchored at zero, read as a
//! continuous, piecewise-linear cumulative curve. Shared by the DVH (values
//! in Gy, masses in cm^3) and the quality-volume histogram (values Q,
//! masses as fractions of the target).
//!
//! Conventions (documented for users on [`crate::Dvh`]):
//! - bin `k` holds the values `k w <= x < (k + 1) w`;
//! - inside a bin the mass is spread uniformly between the bin's edges, but
//!   clipped to the exact minimum (first occupied bin) and maximum (last
//!   occupied bin) of the data, so that the cumulative curve is exactly the
//!   total mass at the minimum and exactly zero at the maximum;
//! - the cumulative curve `C(x)` is the mass at or above `x`; at bin edges it
//!   is exact (it counts the values `>= k w`), between edges it is the linear
//!   interpolation of the uniform-in-bin model;
//! - the quantile `Q(m) = sup { x : C(x) >= m }` is the inverse of that curve
//!   (the largest value such that at least the mass `m` lies at or above it),
//!   with `Q(0) = max` and `Q(total) = min`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest number of bins a histogram may have (8 MB of `f64` per array).
pub const MAX_BINS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HistogramSpec", into = "HistogramSpec")]
pub(crate) struct Histogram {
    bin_width: f64,
    differential: Vec<f64>,
    /// `above[k]` = mass in bins `>= k`; length `n_bins + 1`, last entry 0.
    above: Vec<f64>,
    min: f64,
    max: f64,
}

/// Serialised form: the cumulative array is rebuilt and everything checked.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramSpec {
    bin_width: f64,
    min: f64,
    max: f64,
    differential: Vec<f64>,
}

impl TryFrom<HistogramSpec> for Histogram {
    type Error = Error;
    fn try_from(s: HistogramSpec) -> Result<Self> {
        check_width(s.bin_width, s.max, "histogram")?;
        if !(s.min.is_finite() && s.max.is_finite() && 0.0 <= s.min && s.min <= s.max) {
            return Err(Error::invalid(
                "histogram range",
                format!(
                    "min {} and max {} must satisfy 0 <= min <= max",
                    s.min, s.max
                ),
            ));
        }
        let n = bin_of(s.max, s.bin_width) + 1;
        if s.differential.len() != n {
            return Err(Error::LengthMismatch {
                context: format!(
                    "histogram bins (bin width {}, maximum {})",
                    s.bin_width, s.max
                ),
                expected: n,
                found: s.differential.len(),
            });
        }
        if let Some(k) = s
            .differential
            .iter()
            .position(|m| !(m.is_finite() && *m >= 0.0))
        {
            return Err(Error::InvalidValue {
                quantity: "bin content",
                context: "histogram".into(),
                location: format!("bin {k}"),
                value: s.differential[k],
                requirement: "finite and >= 0",
            });
        }
        let h = Self::from_parts(s.bin_width, s.differential, s.min, s.max);
        if !(h.total() > 0.0 && h.total().is_finite()) {
            return Err(Error::empty("histogram", "its bins hold no mass"));
        }
        Ok(h)
    }
}

impl From<Histogram> for HistogramSpec {
    fn from(h: Histogram) -> Self {
        HistogramSpec {
            bin_width: h.bin_width,
            min: h.min,
            max: h.max,
            differential: h.differential,
        }
    }
}

fn check_width(width: f64, max: f64, what: &str) -> Result<()> {
    if !(width.is_finite() && width > 0.0) {
        return Err(Error::invalid(
            format!("{what} bin width"),
            format!("{width} must be positive and finite"),
        ));
    }
    let bins = (max / width).floor() + 1.0;
    if bins.is_nan() || bins > MAX_BINS as f64 {
        return Err(Error::invalid(
            format!("{what} bin width"),
            format!(
                "{width} is too fine for values up to {max}: {bins} bins (at most {MAX_BINS}); use a wider bin"
            ),
        ));
    }
    Ok(())
}

/// The bin holding `x >= 0`: the largest `k` with `k w <= x` (exact with
/// respect to the edges `k as f64 * w`, whatever the rounding of `x / w`).
#[inline]
pub(crate) fn bin_of(x: f64, w: f64) -> usize {
    bin_of_inv(x, w, 1.0 / w)
}

/// [`bin_of`] with the reciprocal of the width precomputed.
#[inline]
fn bin_of_inv(x: f64, w: f64, inv: f64) -> usize {
    // `as` truncates towards zero (and saturates), i.e. floors x >= 0.
    let mut k = (x * inv) as usize;
    if k > 0 && k as f64 * w > x {
        k -= 1;
    } else if (k + 1) as f64 * w <= x {
        k += 1;
    }
    k
}

/// The mass of each value of a histogram.
#[derive(Clone, Copy)]
pub(crate) enum Masses<'a> {
    /// Every value has this mass.
    Uniform(f64),
    /// One mass per value.
    PerValue(&'a [f64]),
}

/// Values per work item when binning in parallel. The partition depends only
/// on the input (never on the thread count) and partial histograms are added
/// in order, so results are identical for any number of threads.
const CHUNK: usize = 1 << 16;

impl Histogram {
    /// Builds the histogram of `values` (all in `[min, max]`, `min >= 0`,
    /// validated by the caller) with their `masses`, in parallel.
    pub(crate) fn build(
        bin_width: f64,
        min: f64,
        max: f64,
        what: &str,
        values: &[f64],
        masses: Masses<'_>,
    ) -> Result<Self> {
        use rayon::prelude::*;
        check_width(bin_width, max, what)?;
        let n = bin_of(max, bin_width) + 1;
        let inv = 1.0 / bin_width;
        // Larger chunks when there are many bins, so merging stays cheap.
        let chunk = CHUNK.max(4 * n);
        let bin = |x: f64| bin_of_inv(x, bin_width, inv).min(n - 1);
        let differential = match masses {
            Masses::Uniform(m) => {
                // Integer counts: exact, and independent of the summation order.
                let counts = values
                    .par_chunks(chunk)
                    .map(|c| {
                        let mut h = vec![0u64; n];
                        for &x in c {
                            h[bin(x)] += 1;
                        }
                        h
                    })
                    .reduce_with(|mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                        a
                    })
                    .unwrap_or_else(|| vec![0; n]);
                counts.into_iter().map(|c| c as f64 * m).collect()
            }
            Masses::PerValue(w) => {
                debug_assert_eq!(w.len(), values.len());
                let parts: Vec<Vec<f64>> = values
                    .par_chunks(chunk)
                    .zip(w.par_chunks(chunk))
                    .map(|(c, wc)| {
                        let mut h = vec![0.0; n];
                        for (&x, &m) in c.iter().zip(wc) {
                            h[bin(x)] += m;
                        }
                        h
                    })
                    .collect();
                let mut total = vec![0.0; n];
                for p in parts {
                    total.iter_mut().zip(&p).for_each(|(t, x)| *t += x);
                }
                total
            }
        };
        Ok(Self::from_parts(bin_width, differential, min, max))
    }

    fn from_parts(bin_width: f64, differential: Vec<f64>, min: f64, max: f64) -> Self {
        let n = differential.len();
        let mut above = vec![0.0; n + 1];
        for k in (0..n).rev() {
            above[k] = above[k + 1] + differential[k];
        }
        Self {
            bin_width,
            differential,
            above,
            min,
            max,
        }
    }

    pub(crate) fn bin_width(&self) -> f64 {
        self.bin_width
    }

    pub(crate) fn total(&self) -> f64 {
        self.above[0]
    }

    pub(crate) fn min(&self) -> f64 {
        self.min
    }

    pub(crate) fn max(&self) -> f64 {
        self.max
    }

    pub(crate) fn differential(&self) -> &[f64] {
        &self.differential
    }

    /// Mass at or above each bin edge `k w`, `k = 0..=n_bins`.
    pub(crate) fn cumulative(&self) -> &[f64] {
        &self.above
    }

    pub(crate) fn edges(&self) -> Vec<f64> {
        (0..=self.differential.len())
            .map(|k| k as f64 * self.bin_width)
            .collect()
    }

    /// The support of bin `k` after clipping to `[min, max]`.
    #[inline]
    fn support(&self, k: usize) -> (f64, f64) {
        let lo = (k as f64 * self.bin_width).max(self.min);
        let hi = ((k + 1) as f64 * self.bin_width).min(self.max);
        (lo, hi.max(lo))
    }

    /// Mass at or above `x` on the piecewise-linear cumulative curve.
    pub(crate) fn mass_at_or_above(&self, x: f64) -> f64 {
        if x <= self.min {
            return self.total();
        }
        if x > self.max {
            return 0.0;
        }
        let k = bin_of(x, self.bin_width).min(self.differential.len() - 1);
        let (lo, hi) = self.support(k);
        let frac = if hi > lo {
            ((hi - x) / (hi - lo)).clamp(0.0, 1.0)
        } else if x <= lo {
            1.0
        } else {
            0.0
        };
        self.above[k + 1] + self.differential[k] * frac
    }

    /// `sup { x : C(x) >= m }` for a mass `m` (clamped to `[0, total]` by the
    /// callers' validation).
    pub(crate) fn quantile(&self, m: f64) -> f64 {
        if m <= 0.0 {
            return self.max;
        }
        if m >= self.total() {
            return self.min;
        }
        // Largest k with above[k] >= m (above is non-increasing, above[0] >= m).
        let k = self.above.partition_point(|&a| a >= m) - 1;
        let k = k.min(self.differential.len() - 1);
        let mk = self.differential[k];
        let (lo, hi) = self.support(k);
        if mk <= 0.0 {
            return lo;
        }
        let x = hi - (m - self.above[k + 1]) / mk * (hi - lo);
        x.clamp(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_of_is_exact_at_edges() {
        // 0.3 / 0.1 rounds to 2.9999999999999996 but 3 * 0.1 > 0.3 in f64:
        // the value belongs to bin 2 with respect to the edges as computed.
        for (x, w) in [
            (0.3, 0.1),
            (0.7, 0.1),
            (66.5, 0.01),
            (1e-300, 0.01),
            (5.0, 0.5),
        ] {
            let k = bin_of(x, w);
            assert!(k as f64 * w <= x, "{x} {w} {k}");
            assert!((k + 1) as f64 * w > x, "{x} {w} {k}");
        }
    }

    #[test]
    fn quantile_inverts_the_cumulative_curve() {
        // Two voxels at 1.05 and 2.25 (mass 1 each), bins of 0.5.
        let h =
            Histogram::build(0.5, 1.05, 2.25, "test", &[1.05, 2.25], Masses::Uniform(1.0)).unwrap();
        assert_eq!(h.differential(), &[0.0, 0.0, 1.0, 0.0, 1.0]);
        assert!((h.mass_at_or_above(1.05) - 2.0).abs() < 1e-12);
        assert!(h.mass_at_or_above(2.25).abs() < 1e-12);
        // Bin 2 is clipped to [1.05, 1.5]: half its mass lies above 1.275.
        assert!((h.mass_at_or_above(1.275) - 1.5).abs() < 1e-12);
        assert!((h.quantile(1.5) - 1.275).abs() < 1e-12);
        // Plateau over the empty bin 3: C = 1 on [1.5, 2.0]; the quantile is
        // the largest such value.
        assert!((h.quantile(1.0) - 2.0).abs() < 1e-12);
        assert!((h.quantile(0.0) - 2.25).abs() < 1e-12);
        assert!((h.quantile(2.0) - 1.05).abs() < 1e-12);
    }

    #[test]
    fn spec_round_trip_and_validation() {
        let h = Histogram::build(
            0.5,
            0.2,
            1.2,
            "t",
            &[0.2, 1.2],
            Masses::PerValue(&[1.0, 3.0]),
        )
        .unwrap();
        let spec = HistogramSpec::from(h.clone());
        assert_eq!(Histogram::try_from(spec).unwrap(), h);
        let bad = HistogramSpec {
            bin_width: 0.5,
            min: 0.2,
            max: 1.2,
            differential: vec![1.0, 3.0],
        };
        assert!(Histogram::try_from(bad).is_err());
        assert!(Histogram::build(1e-9, 0.0, 70.0, "dvh", &[], Masses::Uniform(1.0)).is_err());
    }
}
