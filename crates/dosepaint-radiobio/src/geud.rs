//! Niemierko's generalized equivalent uniform dose (gEUD) and its gradient.
//!
//! `gEUD = (sum_i v_i D_i^a)^(1/a)`, `v_i = w_i / sum_j w_j` the relative volumes
//! (Niemierko 1999, Med Phys 26:1100 abstract; Wu et al. 2002, Int J Radiat Oncol
//! Biol Phys 52:224). `a = 1` is the mean dose, `a -> +inf` the maximum,
//! `a -> -inf` the minimum; `a -> 0` is the geometric mean `exp(sum_i v_i ln D_i)`.
//! Targets use `a < 0` (about -10), serial organs large `a`, parallel organs `a ~ 1`.
//!
//! Gradient: `d gEUD / d D_i = v_i D_i^(a-1) gEUD^(1-a)` (and `v_i gEUD / D_i` at
//! `a = 0`).
//!
//! ## Zero doses
//! * `a < 0` or `a = 0`: any voxel (with positive weight) at zero dose gives
//!   `gEUD = 0`.
//! * `a > 0`: zero doses are ordinary.
//!
//! Where the gradient does not exist (gEUD is not differentiable where a dose is
//! zero and `a < 1`) the routine returns the limit of the gradient at
//! `D + eps (1, ..., 1)` as `eps -> 0+` when that limit is finite:
//! * `a < 0`, zero set `Z` with relative volume `V_Z`: `v_i V_Z^(1/a - 1)` for
//!   `i` in `Z`, 0 elsewhere. This is the exact one-sided partial derivative when
//!   one voxel is at zero, and a supergradient of the concave gEUD in general.
//! * every dose zero (any `a`): `v_i` (gEUD of a uniform dose is that dose).
//! * `0 <= a < 1` with some, not all, doses at zero: the limit is infinite and an
//!   [`Error::GradientUndefined`] names the first such voxel.
//!
//! ## Numerics
//! Powers are taken relative to a reference dose (the largest dose for `a > 0`, the
//! smallest for `a < 0`) so that no term overflows, and for `|a| < 0.05` the sum is
//! accumulated as `sum v_i expm1(a ln(D_i/D_ref))` and finished with `ln_1p`, so the
//! result stays accurate down to `a -> 0` where it meets the geometric mean. One
//! power per voxel, reused for the gradient. Chunked in parallel; the result is the
//! same for every thread count.

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::voxel::{
    Access, CHUNK, Per, Uni, Weights, check_distribution, check_voxel, chunk_len, collect_ok,
    map_chunks, positive_total,
};

/// Below this `|a|`, sums use `expm1`/`ln_1p` to keep full precision near `a = 0`.
const SMALL_A: f64 = 0.05;

/// The gEUD model with exponent `a` (any finite value).
///
/// ```
/// use dosepaint_radiobio::{Geud, Weights};
/// let doses = [60.0, 70.0];
/// let geud = Geud::new(-10.0)?;
/// let value = geud.value(&doses, Weights::Uniform)?;
/// assert!((value - 63.07).abs() < 0.01);
/// let mut grad = [0.0; 2];
/// geud.value_and_gradient(&doses, &[0.5, 0.5], &mut grad)?;
/// assert!(grad[0] > grad[1]); // the cold voxel dominates for a < 0
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GeudSpec")]
pub struct Geud {
    a: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeudSpec {
    a: f64,
}

impl TryFrom<GeudSpec> for Geud {
    type Error = Error;
    fn try_from(s: GeudSpec) -> Result<Self> {
        Geud::new(s.a)
    }
}

impl Geud {
    /// Any finite exponent `a`.
    pub fn new(a: f64) -> Result<Self> {
        error::finite("a", a).map(|a| Geud { a })
    }

    /// The exponent.
    pub fn a(&self) -> f64 {
        self.a
    }

    /// gEUD of `doses_gy` (Gy, finite, >= 0) with relative volumes `weights`.
    pub fn value<'w>(&self, doses_gy: &[f64], weights: impl Into<Weights<'w>>) -> Result<f64> {
        geud_core(self.a, doses_gy, weights.into(), None, |_| Some(1.0))
    }

    /// gEUD and its gradient with respect to each voxel's dose, written into
    /// `grad_out` (same length as `doses_gy`).
    pub fn value_and_gradient<'w>(
        &self,
        doses_gy: &[f64],
        weights: impl Into<Weights<'w>>,
        grad_out: &mut [f64],
    ) -> Result<f64> {
        geud_core(self.a, doses_gy, weights.into(), Some(grad_out), |_| {
            Some(1.0)
        })
    }
}

/// Per-chunk partial results of the first pass.
#[derive(Clone, Copy)]
struct ChunkSums {
    /// Sum of weights.
    wsum: f64,
    /// Sum of weights of zero-dose voxels.
    zero_w: f64,
    /// First zero-dose voxel with positive weight.
    first_zero: Option<usize>,
    /// Whether any positive-weight voxel has a positive dose.
    any_positive: bool,
    /// Chunk reference dose (max for a > 0, min positive for a < 0).
    reference: f64,
    /// `sum w t` (`t = (D/ref)^a`), or `sum w expm1(a ln(D/ref))` for small |a|, or
    /// `sum w ln D` for a = 0.
    sum: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Power,
    SmallPower,
    Log,
}

/// The shared gEUD kernel. Returns gEUD; with `grad` it writes
/// `outer(gEUD) * d gEUD / d D_i`, where `outer` is the derivative of a model built
/// on gEUD (NTCP...) with respect to gEUD, `None` where it is infinite.
pub(crate) fn geud_core(
    a: f64,
    doses: &[f64],
    weights: Weights<'_>,
    grad: Option<&mut [f64]>,
    outer: impl Fn(f64) -> Option<f64>,
) -> Result<f64> {
    check_distribution(doses, weights, grad.as_deref())?;
    match weights {
        Weights::Uniform => geud_impl(a, doses, Uni(1.0), grad, outer),
        Weights::Relative(w) => geud_impl(a, doses, Per(w), grad, outer),
    }
}

fn geud_impl<W: Access>(
    a: f64,
    doses: &[f64],
    w: W,
    mut grad: Option<&mut [f64]>,
    outer: impl Fn(f64) -> Option<f64>,
) -> Result<f64> {
    let n = doses.len();
    let mode = if a == 0.0 {
        Mode::Log
    } else if a.abs() < SMALL_A {
        Mode::SmallPower
    } else {
        Mode::Power
    };

    // Pass 1: validate, reduce, and (with a gradient) keep w_i t_i in `grad`.
    let parts = map_chunks(n, grad.as_deref_mut(), |start, scratch| {
        chunk_pass(a, mode, doses, w, start, scratch)
    });
    let parts = collect_ok(parts)?;

    let wsum = positive_total(parts.iter().map(|p| p.wsum).sum())?;
    let zero_w: f64 = parts.iter().map(|p| p.zero_w).sum();
    let first_zero = parts.iter().find_map(|p| p.first_zero);
    let any_positive = parts.iter().any(|p| p.any_positive);

    // Special cases where gEUD = 0.
    let all_zero = !any_positive;
    if all_zero || (a <= 0.0 && zero_w > 0.0) {
        if let Some(g) = grad {
            let vz = zero_w / wsum;
            let scale = if a < 0.0 && !all_zero {
                vz.powf(1.0 / a - 1.0)
            } else {
                1.0
            };
            if a >= 0.0
                && !all_zero
                && let Some(index) = first_zero
            {
                return Err(Error::GradientUndefined {
                    index,
                    reason: "a dose is zero with 0 <= a < 1 (infinite derivative)",
                });
            }
            let o = outer(0.0).ok_or(Error::GradientUndefined {
                index: first_zero.unwrap_or(0),
                reason: "the model's derivative with respect to gEUD is infinite at gEUD = 0",
            })?;
            let k = o * scale / wsum;
            for (i, gi) in g.iter_mut().enumerate() {
                let wi = w.get(i);
                *gi = if wi > 0.0 && doses[i] == 0.0 {
                    k * wi
                } else {
                    0.0
                };
            }
        }
        return Ok(0.0);
    }
    if a > 0.0
        && a < 1.0
        && grad.is_some()
        && let Some(index) = first_zero
    {
        return Err(Error::GradientUndefined {
            index,
            reason: "a dose is zero with 0 < a < 1 (infinite derivative)",
        });
    }

    // Combine the chunks.
    let (f, chunk_factor): (f64, Vec<f64>) = match mode {
        Mode::Log => {
            let lsum: f64 = parts.iter().map(|p| p.sum).sum();
            let f = (lsum / wsum).exp();
            (f, vec![f / wsum; parts.len()])
        }
        Mode::Power | Mode::SmallPower => {
            // Reference dose: the largest dose for a > 0, the smallest for a < 0, so
            // that every term (D_i / D_ref)^a <= 1.
            let positive = parts.iter().filter(|p| p.any_positive);
            let reference = if a > 0.0 {
                positive.map(|p| p.reference).fold(0.0, f64::max)
            } else {
                positive.map(|p| p.reference).fold(f64::INFINITY, f64::min)
            };
            // y_c = a ln(ref_c / ref) <= 0; a chunk without a positive dose has
            // t_i = 0 for all its voxels, i.e. y_c = -inf.
            let y: Vec<f64> = parts
                .iter()
                .map(|p| {
                    if p.any_positive {
                        a * (p.reference / reference).ln()
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            let (ln_s, s) = if mode == Mode::Power {
                let s: f64 = parts
                    .iter()
                    .zip(&y)
                    .map(|(p, &yc)| p.sum * yc.exp())
                    .sum::<f64>()
                    / wsum;
                (s.ln(), s)
            } else {
                // sum_i w_i expm1(a L_i + y_c) = e^y_c sum w_i expm1(a L_i) + expm1(y_c) W_c
                let sp: f64 = parts
                    .iter()
                    .zip(&y)
                    .map(|(p, &yc)| p.sum * yc.exp() + yc.exp_m1() * p.wsum)
                    .sum::<f64>()
                    / wsum;
                (sp.ln_1p(), 1.0 + sp)
            };
            let f = reference * (ln_s / a).exp();
            let k = f / (s * wsum);
            (f, y.iter().map(|&yc| k * yc.exp()).collect())
        }
    };

    if let Some(g) = grad {
        let o = outer(f).ok_or(Error::GradientUndefined {
            index: first_zero.unwrap_or(0),
            reason: "the model's derivative with respect to gEUD is infinite here",
        })?;
        let unit_slope = o / wsum; // a = 1 at zero dose: d gEUD / d D_i = v_i
        let parts_out = map_chunks(n, Some(g), |start, out| {
            let out = out.expect("gradient chunk");
            let kc = o * chunk_factor[start / CHUNK];
            for (j, gi) in out.iter_mut().enumerate() {
                let i = start + j;
                let d = doses[i];
                let wi = w.get(i);
                *gi = if wi <= 0.0 {
                    0.0
                } else if d > 0.0 {
                    match mode {
                        Mode::Log => kc * wi / d,
                        _ => kc * *gi / d,
                    }
                } else if a > 1.0 {
                    0.0
                } else {
                    // a == 1 (0 < a < 1 with a zero dose was refused above).
                    unit_slope * wi
                };
            }
        });
        debug_assert_eq!(parts_out.len(), n.div_ceil(CHUNK));
    }
    Ok(f)
}

/// `|a|` when `a` is a whole number small enough for repeated squaring.
fn integer_exponent(a: f64) -> Option<u32> {
    (a.fract() == 0.0 && a.abs() <= 1024.0).then(|| a.abs() as u32)
}

/// Terms below this are flushed to zero while powering (keeps the arithmetic out of
/// the slow subnormal range; such terms are negligible next to the reference
/// voxel's term, which is its weight).
const TINY: f64 = 1e-280;

/// `out[j] = base[j]^k` by binary powering, one vectorisable pass per bit of `k`.
/// `base` (values in [0, 1]) is destroyed.
fn powi_in_place(base: &mut [f64], k: u32, out: &mut [f64]) {
    out.fill(1.0);
    let mut k = k;
    while k > 0 {
        if k & 1 == 1 {
            for (o, &b) in out.iter_mut().zip(base.iter()) {
                let t = *o * b;
                *o = if t < TINY { 0.0 } else { t };
            }
        }
        k >>= 1;
        if k > 0 {
            for b in base.iter_mut() {
                let t = *b * *b;
                *b = if t < TINY { 0.0 } else { t };
            }
        }
    }
}

/// Sum in four fixed lanes (vectorisable, same result for every thread count).
fn lane_sum(x: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let mut it = x.chunks_exact(4);
    for c in &mut it {
        for q in 0..4 {
            lanes[q] += c[q];
        }
    }
    let tail: f64 = it.remainder().iter().sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

// Bitwise `&` on comparisons keeps loop 1 free of branches so it vectorises.
#[allow(clippy::needless_bitwise_bool, clippy::manual_range_contains)]
fn chunk_pass<W: Access>(
    a: f64,
    mode: Mode,
    doses: &[f64],
    w: W,
    start: usize,
    scratch: Option<&mut [f64]>,
) -> Result<ChunkSums> {
    let len = chunk_len(doses.len(), start);
    let d = &doses[start..start + len];
    // Loop 1, branch-free and in four independent lanes (so it vectorises):
    // validity, weight sum, dose range of the weighted voxels.
    let mut ok = [true; 4];
    let mut wsum4 = [0.0f64; 4];
    let mut dmin4 = [f64::INFINITY; 4];
    let mut dmax4 = [0.0f64; 4];
    let mut positives4 = [0u64; 4];
    let mut zeros4 = [0u64; 4];
    let mut lane = |q: usize, dj: f64, wj: f64| {
        // NaN fails every comparison; `<= MAX` rejects infinity.
        ok[q] &= (dj >= 0.0) & (dj <= f64::MAX) & (wj >= 0.0) & (wj <= f64::MAX);
        wsum4[q] += wj;
        let pos = wj > 0.0;
        let counts = pos & (dj > 0.0);
        positives4[q] += u64::from(counts);
        zeros4[q] += u64::from(pos & (dj <= 0.0));
        dmin4[q] = if counts & (dj < dmin4[q]) {
            dj
        } else {
            dmin4[q]
        };
        dmax4[q] = if counts & (dj > dmax4[q]) {
            dj
        } else {
            dmax4[q]
        };
    };
    let mut quads = d.chunks_exact(4);
    let mut j = 0;
    for dq in &mut quads {
        let wq = w.get4(start + j);
        for q in 0..4 {
            lane(q, dq[q], wq[q]);
        }
        j += 4;
    }
    for (q, &dj) in quads.remainder().iter().enumerate() {
        lane(q, dj, w.get(start + j + q));
    }
    let bad = !(ok[0] & ok[1] & ok[2] & ok[3]);
    let wsum = (wsum4[0] + wsum4[1]) + (wsum4[2] + wsum4[3]);
    let dmin = dmin4.iter().copied().fold(f64::INFINITY, f64::min);
    let dmax = dmax4.iter().copied().fold(0.0, f64::max);
    let positives: u64 = positives4.iter().sum();
    let zeros: u64 = zeros4.iter().sum();
    if bad {
        for (j, &dj) in d.iter().enumerate() {
            check_voxel(start + j, dj, w.get(start + j))?;
        }
    }
    let mut zero_w = 0.0;
    let mut first_zero = None;
    if zeros > 0 {
        for (j, &dj) in d.iter().enumerate() {
            let wj = w.get(start + j);
            if wj > 0.0 && dj == 0.0 {
                zero_w += wj;
                first_zero.get_or_insert(start + j);
            }
        }
    }
    let any_positive = positives > 0;
    let reference = if a > 0.0 { dmax } else { dmin };
    let mut sums = ChunkSums {
        wsum,
        zero_w,
        first_zero,
        any_positive,
        reference,
        sum: 0.0,
    };
    // With a <= 0 and a zero dose the result is 0 whatever the rest.
    if !any_positive || (a <= 0.0 && zero_w > 0.0) {
        return Ok(sums);
    }
    let inv = 1.0 / reference;
    // Per-voxel terms w_i t_i, kept in the gradient buffer when there is one.
    let mut local;
    let terms: &mut [f64] = if let Some(s) = scratch {
        s
    } else {
        local = vec![0.0f64; len];
        &mut local
    };
    let sum = match mode {
        Mode::Log => {
            let mut sum = 0.0;
            for (j, &dj) in d.iter().enumerate() {
                let wj = w.get(start + j);
                if wj > 0.0 {
                    sum += wj * dj.ln();
                }
            }
            sum
        }
        Mode::SmallPower => {
            let mut sum = 0.0;
            for (j, (&dj, tj)) in d.iter().zip(terms.iter_mut()).enumerate() {
                let wj = w.get(start + j);
                let (we, wt) = if wj > 0.0 {
                    let e = (a * (dj * inv).ln()).exp_m1();
                    (wj * e, wj * (1.0 + e))
                } else {
                    (0.0, 0.0)
                };
                sum += we;
                *tj = wt;
            }
            sum
        }
        Mode::Power => {
            if let Some(k) = integer_exponent(a) {
                // Whole-number exponent: (D/ref)^a by repeated squaring of a base in
                // [0, 1] (D/ref for a > 0, ref/D for a < 0), no exp or ln.
                let mut base = vec![0.0f64; len];
                for (j, (&dj, b)) in d.iter().zip(base.iter_mut()).enumerate() {
                    let x = if a > 0.0 { dj * inv } else { reference / dj };
                    *b = if w.get(start + j) > 0.0 { x } else { 0.0 };
                }
                powi_in_place(&mut base, k, terms);
                for (j, tj) in terms.iter_mut().enumerate() {
                    *tj *= w.get(start + j);
                }
            } else {
                for (j, (&dj, tj)) in d.iter().zip(terms.iter_mut()).enumerate() {
                    let wj = w.get(start + j);
                    *tj = if wj > 0.0 {
                        wj * (a * (dj * inv).ln()).exp()
                    } else {
                        0.0
                    };
                }
            }
            lane_sum(terms)
        }
    };
    sums.sum = sum;
    Ok(sums)
}
