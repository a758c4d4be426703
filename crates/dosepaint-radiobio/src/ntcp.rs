//! Normal tissue complication probability (NTCP) models, each with its gradient
//! with respect to the voxel doses.
//!
//! * [`Lkb`]: Lyman-Kutcher-Burman. `NTCP = Phi(t)`, `t = (gEUD - TD50) / (m TD50)`,
//!   gEUD with `a = 1/n` (Lyman 1985; Kutcher & Burman 1989; the gEUD form of the
//!   DVH reduction as in Mohan et al. 1992 and the QUANTEC reviews, Deasy et al. 2010).
//! * [`LogitNtcp`]: Niemierko's logistic EUD model,
//!   `NTCP = 1 / (1 + (TD50 / gEUD)^(4 gamma50))` (Niemierko 1999; Gay & Niemierko
//!   2007, Phys Med 23:115). The "k-form" `1 / (1 + (TD50/gEUD)^k)` is the same model
//!   with `k = 4 gamma50` ([`LogitNtcp::from_k`]).
//! * [`RelativeSeriality`]: Källman, Ågren & Brahme 1992 (Int J Radiat Biol 62:249),
//!   `NTCP = (1 - prod_i (1 - P(D_i)^s)^(v_i))^(1/s)` with the Poisson voxel response
//!   `P(D) = 2^(-exp(e gamma (1 - D / D50)))`.
//!
//! The parameters of published fits refer to doses in 2 Gy fractions: convert
//! physical doses with [`eqd2_map_with_derivative`](crate::eqd2_map_with_derivative)
//! first and multiply the gradient by the derivative it returns.

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::geud::geud_core;
use crate::voxel::{
    Access, Per, Uni, Weights, check_distribution, check_voxel, chunk_len, collect_ok, map_chunks,
    positive_total,
};

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Standard normal cumulative distribution `Phi(t) = erfc(-t / sqrt 2) / 2`.
pub fn standard_normal_cdf(t: f64) -> f64 {
    0.5 * libm::erfc(-t * std::f64::consts::FRAC_1_SQRT_2)
}

/// Standard normal density `phi(t)`.
pub fn standard_normal_pdf(t: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * t * t).exp()
}

/// An NTCP model that depends on the dose distribution through its gEUD alone
/// ([`Lkb`], [`LogitNtcp`]): the voxel loop and its validation are gEUD's, the model
/// supplies the exponent and its response curve with the curve's slope.
trait GeudResponse {
    /// The gEUD exponent `a`.
    fn exponent(&self) -> f64;
    /// NTCP at a given gEUD (Gy).
    fn response(&self, geud_gy: f64) -> f64;
    /// `d NTCP / d gEUD`, `None` where it is infinite.
    fn slope(&self, geud_gy: f64) -> Option<f64>;
}

/// NTCP of a gEUD-based model; with `grad` it also writes `d NTCP / d D_i` there.
fn geud_ntcp(
    model: &impl GeudResponse,
    doses_gy: &[f64],
    weights: Weights<'_>,
    grad: Option<&mut [f64]>,
) -> Result<f64> {
    let g = geud_core(model.exponent(), doses_gy, weights, grad, |g| {
        model.slope(g)
    })?;
    Ok(model.response(g))
}

/// Lyman-Kutcher-Burman NTCP.
///
/// ```
/// use dosepaint_radiobio::{Lkb, Weights};
/// // QUANTEC parotid (Deasy et al. 2010): TD50 39.9 Gy, m 0.40, n 1; uniform 26 Gy.
/// let lkb = Lkb::new(39.9, 0.40, 1.0)?;
/// let p = lkb.ntcp(&[26.0, 26.0], Weights::Uniform)?;
/// assert!((p - 0.192).abs() < 0.002);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LkbSpec")]
pub struct Lkb {
    td50_gy: f64,
    m: f64,
    n: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LkbSpec {
    td50_gy: f64,
    m: f64,
    n: f64,
}

impl TryFrom<LkbSpec> for Lkb {
    type Error = Error;
    fn try_from(s: LkbSpec) -> Result<Self> {
        Lkb::new(s.td50_gy, s.m, s.n)
    }
}

impl Lkb {
    /// `TD50` (Gy, > 0), slope `m` (> 0) and volume parameter `n` (> 0).
    pub fn new(td50_gy: f64, m: f64, n: f64) -> Result<Self> {
        error::all_positive(&[("td50_gy", td50_gy), ("m", m), ("n", n)])?;
        Ok(Lkb { td50_gy, m, n })
    }

    /// `TD50` in Gy.
    pub fn td50_gy(&self) -> f64 {
        self.td50_gy
    }

    /// Slope parameter `m`.
    pub fn m(&self) -> f64 {
        self.m
    }

    /// Volume parameter `n`.
    pub fn n(&self) -> f64 {
        self.n
    }

    /// The gEUD exponent `a = 1/n`.
    pub fn geud_exponent(&self) -> f64 {
        1.0 / self.n
    }

    fn t(&self, geud: f64) -> f64 {
        (geud - self.td50_gy) / (self.m * self.td50_gy)
    }

    /// NTCP for a given gEUD (Gy).
    pub fn ntcp_from_geud(&self, geud_gy: f64) -> f64 {
        standard_normal_cdf(self.t(geud_gy))
    }

    /// `d NTCP / d gEUD` at a given gEUD.
    pub fn ntcp_slope_from_geud(&self, geud_gy: f64) -> f64 {
        standard_normal_pdf(self.t(geud_gy)) / (self.m * self.td50_gy)
    }

    /// NTCP of a dose distribution (Gy) with relative volumes `weights`.
    pub fn ntcp<'w>(&self, doses_gy: &[f64], weights: impl Into<Weights<'w>>) -> Result<f64> {
        geud_ntcp(self, doses_gy, weights.into(), None)
    }

    /// NTCP and its gradient with respect to each voxel dose (into `grad_out`).
    pub fn ntcp_and_gradient<'w>(
        &self,
        doses_gy: &[f64],
        weights: impl Into<Weights<'w>>,
        grad_out: &mut [f64],
    ) -> Result<f64> {
        geud_ntcp(self, doses_gy, weights.into(), Some(grad_out))
    }
}

impl GeudResponse for Lkb {
    fn exponent(&self) -> f64 {
        self.geud_exponent()
    }
    fn response(&self, geud_gy: f64) -> f64 {
        self.ntcp_from_geud(geud_gy)
    }
    fn slope(&self, geud_gy: f64) -> Option<f64> {
        Some(self.ntcp_slope_from_geud(geud_gy))
    }
}

/// Niemierko's logistic (logit) EUD-based NTCP:
/// `NTCP = 1 / (1 + (TD50 / gEUD)^(4 gamma50))`, gEUD with exponent `a`.
///
/// `gamma50` is the normalised slope at 50 %: `dNTCP/dgEUD = gamma50 / TD50` there.
///
/// ```
/// use dosepaint_radiobio::{LogitNtcp, Weights};
/// let model = LogitNtcp::new(46.0, 2.0, 1.0)?;
/// assert!((model.ntcp(&[46.0], Weights::Uniform)? - 0.5).abs() < 1e-12);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LogitSpec")]
pub struct LogitNtcp {
    td50_gy: f64,
    gamma50: f64,
    a: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogitSpec {
    td50_gy: f64,
    gamma50: f64,
    a: f64,
}

impl TryFrom<LogitSpec> for LogitNtcp {
    type Error = Error;
    fn try_from(s: LogitSpec) -> Result<Self> {
        LogitNtcp::new(s.td50_gy, s.gamma50, s.a)
    }
}

/// Logistic function `1 / (1 + e^-x)`, stable for large |x|.
fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl LogitNtcp {
    /// `TD50` (Gy, > 0), `gamma50` (> 0) and the gEUD exponent `a` (finite).
    pub fn new(td50_gy: f64, gamma50: f64, a: f64) -> Result<Self> {
        error::all_positive(&[("td50_gy", td50_gy), ("gamma50", gamma50)])?;
        error::finite("a", a)?;
        Ok(LogitNtcp {
            td50_gy,
            gamma50,
            a,
        })
    }

    /// The k-form `1 / (1 + (TD50/gEUD)^k)`: `gamma50 = k / 4`.
    pub fn from_k(td50_gy: f64, k: f64, a: f64) -> Result<Self> {
        error::positive("k", k)?;
        LogitNtcp::new(td50_gy, k / 4.0, a)
    }

    /// `TD50` in Gy.
    pub fn td50_gy(&self) -> f64 {
        self.td50_gy
    }

    /// `gamma50`.
    pub fn gamma50(&self) -> f64 {
        self.gamma50
    }

    /// The gEUD exponent.
    pub fn a(&self) -> f64 {
        self.a
    }

    /// NTCP for a given gEUD (Gy, >= 0).
    pub fn ntcp_from_geud(&self, geud_gy: f64) -> f64 {
        if geud_gy <= 0.0 {
            return 0.0;
        }
        logistic(4.0 * self.gamma50 * (geud_gy / self.td50_gy).ln())
    }

    /// `d NTCP / d gEUD`; `None` where it is infinite (gEUD = 0 with `4 gamma50 < 1`).
    pub fn ntcp_slope_from_geud(&self, geud_gy: f64) -> Option<f64> {
        let k = 4.0 * self.gamma50;
        if geud_gy <= 0.0 {
            // NTCP ~ (gEUD/TD50)^k near 0.
            return if k > 1.0 {
                Some(0.0)
            } else if k < 1.0 {
                None
            } else {
                Some(1.0 / self.td50_gy)
            };
        }
        let x = k * (geud_gy / self.td50_gy).ln();
        Some(logistic(x) * logistic(-x) * k / geud_gy)
    }

    /// NTCP of a dose distribution (Gy) with relative volumes `weights`.
    pub fn ntcp<'w>(&self, doses_gy: &[f64], weights: impl Into<Weights<'w>>) -> Result<f64> {
        geud_ntcp(self, doses_gy, weights.into(), None)
    }

    /// NTCP and its gradient with respect to each voxel dose (into `grad_out`).
    pub fn ntcp_and_gradient<'w>(
        &self,
        doses_gy: &[f64],
        weights: impl Into<Weights<'w>>,
        grad_out: &mut [f64],
    ) -> Result<f64> {
        geud_ntcp(self, doses_gy, weights.into(), Some(grad_out))
    }
}

impl GeudResponse for LogitNtcp {
    fn exponent(&self) -> f64 {
        self.a
    }
    fn response(&self, geud_gy: f64) -> f64 {
        self.ntcp_from_geud(geud_gy)
    }
    fn slope(&self, geud_gy: f64) -> Option<f64> {
        self.ntcp_slope_from_geud(geud_gy)
    }
}

/// Källman's relative seriality NTCP model.
///
/// ```
/// use dosepaint_radiobio::{RelativeSeriality, Weights};
/// // Gagliardi et al. 1996, heart (cardiac mortality): D50 52.2 Gy, gamma 1.28, s 1.
/// let rs = RelativeSeriality::new(52.2, 1.28, 1.0)?;
/// assert!((rs.ntcp(&[52.2], Weights::Uniform)? - 0.5).abs() < 1e-12);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RsSpec")]
pub struct RelativeSeriality {
    d50_gy: f64,
    gamma: f64,
    s: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RsSpec {
    d50_gy: f64,
    gamma: f64,
    s: f64,
}

impl TryFrom<RsSpec> for RelativeSeriality {
    type Error = Error;
    fn try_from(x: RsSpec) -> Result<Self> {
        RelativeSeriality::new(x.d50_gy, x.gamma, x.s)
    }
}

#[derive(Clone, Copy)]
struct RsSums {
    wsum: f64,
    /// `sum_i w_i ln(1 - Q_i)`.
    log_sum: f64,
    /// Some voxel has `Q_i = 1` to machine precision (certain complication).
    saturated: bool,
}

impl RelativeSeriality {
    /// `D50` (Gy, > 0), normalised slope `gamma` (> 0) and relative seriality `s` (> 0).
    pub fn new(d50_gy: f64, gamma: f64, s: f64) -> Result<Self> {
        error::all_positive(&[("d50_gy", d50_gy), ("gamma", gamma), ("s", s)])?;
        Ok(RelativeSeriality { d50_gy, gamma, s })
    }

    /// `D50` in Gy.
    pub fn d50_gy(&self) -> f64 {
        self.d50_gy
    }

    /// Normalised slope `gamma`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Relative seriality `s`.
    pub fn s(&self) -> f64 {
        self.s
    }

    /// Poisson response of a whole organ irradiated uniformly to `dose_gy`:
    /// `P(D) = 2^(-exp(e gamma (1 - D/D50)))`.
    pub fn voxel_response(&self, dose_gy: f64) -> f64 {
        let u = std::f64::consts::E * self.gamma * (1.0 - dose_gy / self.d50_gy);
        (-std::f64::consts::LN_2 * u.exp()).exp()
    }

    /// NTCP of a dose distribution (Gy) with relative volumes `weights`.
    pub fn ntcp<'w>(&self, doses_gy: &[f64], weights: impl Into<Weights<'w>>) -> Result<f64> {
        self.eval(doses_gy, weights.into(), None)
    }

    /// NTCP and its gradient with respect to each voxel dose (into `grad_out`).
    pub fn ntcp_and_gradient<'w>(
        &self,
        doses_gy: &[f64],
        weights: impl Into<Weights<'w>>,
        grad_out: &mut [f64],
    ) -> Result<f64> {
        self.eval(doses_gy, weights.into(), Some(grad_out))
    }

    fn eval(&self, doses: &[f64], weights: Weights<'_>, grad: Option<&mut [f64]>) -> Result<f64> {
        check_distribution(doses, weights, grad.as_deref())?;
        match weights {
            Weights::Uniform => self.eval_impl(doses, Uni(1.0), grad),
            Weights::Relative(w) => self.eval_impl(doses, Per(w), grad),
        }
    }

    fn eval_impl<W: Access>(
        &self,
        doses: &[f64],
        w: W,
        mut grad: Option<&mut [f64]>,
    ) -> Result<f64> {
        let n = doses.len();
        let eg = std::f64::consts::E * self.gamma;
        let s = self.s;
        let inv_d50 = 1.0 / self.d50_gy;
        let parts = map_chunks(n, grad.as_deref_mut(), |start, mut scratch| {
            let len = chunk_len(n, start);
            let mut sums = RsSums {
                wsum: 0.0,
                log_sum: 0.0,
                saturated: false,
            };
            for j in 0..len {
                let i = start + j;
                let d = doses[i];
                let wi = w.get(i);
                check_voxel(i, d, wi)?;
                let mut g = 0.0;
                if wi > 0.0 {
                    sums.wsum += wi;
                    let e = (eg * (1.0 - d * inv_d50)).exp();
                    // ln Q = s ln P = -s ln2 e^u
                    let ln_q = -s * std::f64::consts::LN_2 * e;
                    let q = ln_q.exp();
                    let one_minus_q = -ln_q.exp_m1();
                    if one_minus_q > 0.0 {
                        let ln_1mq = if q < 0.5 {
                            (-q).ln_1p()
                        } else {
                            one_minus_q.ln()
                        };
                        sums.log_sum += wi * ln_1mq;
                        // dQ/dD / (1 - Q) = (-ln Q) (e gamma / D50) Q / (1 - Q)
                        g = wi * (-ln_q) * eg * inv_d50 * q / one_minus_q;
                    } else {
                        sums.saturated = true;
                    }
                }
                if let Some(out) = scratch.as_deref_mut() {
                    out[j] = g;
                }
            }
            Ok(sums)
        });
        let parts = collect_ok(parts)?;
        let wsum = positive_total(parts.iter().map(|p| p.wsum).sum())?;
        let saturated = parts.iter().any(|p| p.saturated);
        let l = parts.iter().map(|p| p.log_sum).sum::<f64>() / wsum;
        let (ntcp, factor) = if saturated {
            (1.0, 0.0)
        } else {
            let pi = l.exp();
            let one_minus_pi = -l.exp_m1();
            if one_minus_pi > 0.0 {
                let ntcp = one_minus_pi.powf(1.0 / s);
                // d NTCP / d D_i = (1/s) (1 - Pi)^(1/s - 1) Pi v_i Q_i' / (1 - Q_i)
                (ntcp, ntcp / one_minus_pi / s * pi / wsum)
            } else {
                (0.0, 0.0)
            }
        };
        if let Some(g) = grad {
            for gi in g.iter_mut() {
                *gi *= factor;
            }
        }
        Ok(ntcp)
    }
}
