//! A tabulated error function for the inner loop of the beamlet kernel.
//!
//! `erf` is tabulated on `[0, ERF_T_MAX]` with step `1 / ERF_STEPS_PER_UNIT`
//! from `libm::erf` (double precision) and read with linear interpolation;
//! beyond `ERF_T_MAX` it returns +-1 and it is odd by construction.
//!
//! Accuracy: the linear-interpolation error is at most `h^2 / 8 max|erf''|`
//! with `h = 1/1024` and `max|erf''| = 2 sqrt(2/pi) e^(-1/2) = 0.968`, i.e.
//! `1.2e-7`; storing the table in `f32` adds at most `6e-8`, and the tail
//! `1 - erf(4) = 1.5e-8`. The bound `2e-7` is checked against `libm::erf` in
//! the tests. The table is 16 KiB, so it stays in the L1 cache.

use std::sync::OnceLock;

/// Upper end of the table (erf(4) = 1 - 1.5e-8).
pub const ERF_T_MAX: f32 = 4.0;
/// Table entries per unit argument.
pub const ERF_STEPS_PER_UNIT: usize = 1024;
/// Documented maximum absolute error of [`erf_fast`] against the exact erf.
pub const ERF_MAX_ABS_ERROR: f64 = 2e-7;

const N: usize = ERF_T_MAX as usize * ERF_STEPS_PER_UNIT;

fn table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..N + 2)
            .map(|n| libm::erf(n as f64 / ERF_STEPS_PER_UNIT as f64) as f32)
            .collect()
    })
}

/// A handle on the erf table, so inner loops avoid the `OnceLock` check.
#[derive(Clone, Copy)]
pub(crate) struct ErfTable {
    t: &'static [f32],
}

impl ErfTable {
    pub(crate) fn get() -> Self {
        Self { t: table() }
    }

    /// `erf(x)` within [`ERF_MAX_ABS_ERROR`].
    #[inline]
    pub(crate) fn erf(self, x: f32) -> f32 {
        let a = x.abs();
        let u = a * ERF_STEPS_PER_UNIT as f32;
        let v = if u < N as f32 {
            let i = u as usize;
            let f = u - i as f32;
            let lo = self.t[i];
            let hi = self.t[i + 1];
            lo + (hi - lo) * f
        } else {
            1.0
        };
        v.copysign(x)
    }

    /// `(erf(b) - erf(a)) / 2`: the fraction of a unit Gaussian between two
    /// scaled abscissae.
    #[inline]
    pub(crate) fn half_diff(self, a: f32, b: f32) -> f32 {
        0.5 * (self.erf(b) - self.erf(a))
    }
}

/// Tabulated `erf(x)` in single precision, within [`ERF_MAX_ABS_ERROR`] of
/// the exact value for every finite `x`.
///
/// ```
/// let e = dosepaint_dose::erf_fast(0.5);
/// assert!((f64::from(e) - 0.5204998778130465).abs() < dosepaint_dose::ERF_MAX_ABS_ERROR);
/// ```
pub fn erf_fast(x: f32) -> f32 {
    ErfTable::get().erf(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_within_documented_bound() {
        let t = ErfTable::get();
        let mut worst = 0.0f64;
        // Dense scan including points between table nodes and beyond the table.
        for n in -60_000..=60_000 {
            let x = n as f64 * 1e-4 + 0.37e-5;
            let e = f64::from(t.erf(x as f32));
            let err = (e - libm::erf(f64::from(x as f32))).abs();
            worst = worst.max(err);
        }
        assert!(worst < ERF_MAX_ABS_ERROR, "worst error {worst}");
    }

    #[test]
    fn odd_and_saturating() {
        let t = ErfTable::get();
        for x in [0.0f32, 0.1, 1.3, 3.99, 4.0, 7.0, 1e30] {
            assert!((t.erf(-x) + t.erf(x)).abs() < 1e-7);
        }
        assert!((t.erf(1e30) - 1.0).abs() < 1e-7);
        // Closed forms: erf(0) = 0, erf(1) = 0.8427007929497149 (Abramowitz & Stegun table 7.1).
        assert!(t.erf(0.0).abs() < 1e-9);
        assert!((f64::from(t.erf(1.0)) - 0.842_700_792_949_714_9).abs() < 2e-7);
    }
}
