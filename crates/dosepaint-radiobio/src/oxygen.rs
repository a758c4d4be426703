//! The oxygen effect: oxygen enhancement ratios (OER) for the alpha and beta terms
//! as functions of the partial pressure of oxygen, and hypoxia-modified LQ
//! parameters.
//!
//! `OER(p) = m (p + K) / (m p + K)` (the Alper & Howard-Flanders 1956 form, written
//! relative to well-oxygenated cells): `OER(0) = m`, `OER(p -> inf) = 1`, and `K` is
//! the pO2 at which the radiosensitivity is half-way between anoxic and oxic.
//! Hypoxic parameters: `alpha(p) = alpha / OER_alpha(p)`,
//! `beta(p) = beta / OER_beta(p)^2` (Carlson, Stewart & Semenenko 2006,
//! Med Phys 33:3105).

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::lq::LqParams;
use crate::voxel::check_len;

/// Parameters of the OER curves for the alpha and beta terms.
///
/// ```
/// use dosepaint_radiobio::{LqParams, OerModel};
/// let oer = OerModel::default(); // Carlson, Stewart & Semenenko 2006
/// assert_eq!(oer.oer_alpha(0.0)?, 2.5);
/// let hypoxic = oer.hypoxic_lq(&LqParams::new(0.3, 0.03)?, 0.0)?;
/// assert!((hypoxic.alpha_per_gy() - 0.12).abs() < 1e-12);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "OerModelSpec")]
pub struct OerModel {
    m_alpha: f64,
    m_beta: f64,
    k_mmhg: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OerModelSpec {
    m_alpha: f64,
    m_beta: f64,
    k_mmhg: f64,
}

impl TryFrom<OerModelSpec> for OerModel {
    type Error = Error;
    fn try_from(s: OerModelSpec) -> Result<Self> {
        OerModel::new(s.m_alpha, s.m_beta, s.k_mmhg)
    }
}

impl Default for OerModel {
    fn default() -> Self {
        OerModel::carlson_2006()
    }
}

fn max_oer(name: &'static str, m: f64) -> Result<f64> {
    if m.is_finite() && m >= 1.0 {
        Ok(m)
    } else {
        Err(Error::InvalidParameter {
            name,
            value: m,
            requirement: "finite and >= 1 (the maximum OER, at anoxia)",
        })
    }
}

impl OerModel {
    /// Maximum OERs for the alpha and beta terms (finite, >= 1) and `K` (mmHg, > 0).
    pub fn new(m_alpha: f64, m_beta: f64, k_mmhg: f64) -> Result<Self> {
        max_oer("m_alpha", m_alpha)?;
        max_oer("m_beta", m_beta)?;
        error::positive("k_mmhg", k_mmhg)?;
        Ok(OerModel {
            m_alpha,
            m_beta,
            k_mmhg,
        })
    }

    /// One OER curve for both terms (`m_alpha = m_beta = m`).
    pub fn single(m: f64, k_mmhg: f64) -> Result<Self> {
        OerModel::new(m, m, k_mmhg)
    }

    /// Carlson, Stewart & Semenenko 2006 (Med Phys 33:3105): `m_alpha = 2.5`,
    /// `m_beta = 3.0`, `K = 3.28 mmHg`. The default.
    pub fn carlson_2006() -> Self {
        OerModel {
            m_alpha: 2.5,
            m_beta: 3.0,
            k_mmhg: 3.28,
        }
    }

    /// Maximum OER of the alpha term.
    pub fn m_alpha(&self) -> f64 {
        self.m_alpha
    }

    /// Maximum OER of the beta term.
    pub fn m_beta(&self) -> f64 {
        self.m_beta
    }

    /// `K` in mmHg.
    pub fn k_mmhg(&self) -> f64 {
        self.k_mmhg
    }

    #[inline]
    fn oer(m: f64, k: f64, p: f64) -> f64 {
        m * (p + k) / (m * p + k)
    }

    /// `OER_alpha(p)`; `p` in mmHg, finite and >= 0.
    pub fn oer_alpha(&self, po2_mmhg: f64) -> Result<f64> {
        error::non_negative("po2_mmhg", po2_mmhg)?;
        Ok(Self::oer(self.m_alpha, self.k_mmhg, po2_mmhg))
    }

    /// `OER_beta(p)`; `p` in mmHg, finite and >= 0.
    pub fn oer_beta(&self, po2_mmhg: f64) -> Result<f64> {
        error::non_negative("po2_mmhg", po2_mmhg)?;
        Ok(Self::oer(self.m_beta, self.k_mmhg, po2_mmhg))
    }

    /// Hypoxia-modified LQ parameters at `p` mmHg: `alpha / OER_alpha(p)`,
    /// `beta / OER_beta(p)^2`.
    pub fn hypoxic_lq(&self, oxic: &LqParams, po2_mmhg: f64) -> Result<LqParams> {
        let oa = self.oer_alpha(po2_mmhg)?;
        let ob = self.oer_beta(po2_mmhg)?;
        LqParams::new(oxic.alpha_per_gy() / oa, oxic.beta_per_gy2() / (ob * ob))
    }

    /// Per-voxel hypoxic alpha and beta maps from a pO2 map (mmHg), e.g. derived
    /// from FMISO PET, to feed [`PoissonTcp`](crate::PoissonTcp).
    pub fn hypoxic_maps(
        &self,
        oxic: &LqParams,
        po2_mmhg: &[f64],
        alpha_out: &mut [f64],
        beta_out: &mut [f64],
    ) -> Result<()> {
        let n = po2_mmhg.len();
        check_len("alpha_out", n, alpha_out.len())?;
        check_len("beta_out", n, beta_out.len())?;
        for (i, &p) in po2_mmhg.iter().enumerate() {
            if !(p.is_finite() && p >= 0.0) {
                return Err(Error::InvalidVoxelValue {
                    quantity: "po2_mmhg",
                    index: i,
                    value: p,
                    requirement: "finite and >= 0 mmHg",
                });
            }
            let oa = Self::oer(self.m_alpha, self.k_mmhg, p);
            let ob = Self::oer(self.m_beta, self.k_mmhg, p);
            alpha_out[i] = oxic.alpha_per_gy() / oa;
            beta_out[i] = oxic.beta_per_gy2() / (ob * ob);
        }
        Ok(())
    }
}
