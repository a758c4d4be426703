//! The photon beam model ("machine"): its parameters, their serde file form,
//! the calibration, and the analytic dose in a flat water phantom.
//!
//! The model is a finite-size pencil beam. For a point at radiological depth
//! `z` (mm water) and distance `r` from the source along the central axis,
//! projected through the source onto the isocentre plane at `(x, y)`, the dose
//! of a rectangular beamlet `[x1, x2] x [y1, y2]` (isocentre plane) with unit
//! weight is
//!
//! ```text
//! D = N (SAD / r)^2  sum_k A_k(z) X_k Y_k
//! X_k = (erf((x2 - x) / (sqrt2 s_k)) - erf((x1 - x) / (sqrt2 s_k))) / 2   (Y_k alike)
//! A_p(z) = exp(-mu z) (1 - exp(-beta z))              primary, with build-up
//! A_s(z) = a_s exp(-mu_s z) (1 - exp(-gamma z))       phantom scatter
//! A_e(z) = a_e exp(-z / lambda)                       electron contamination
//! s_k^2  = (sigma_k(z) SAD / r)^2 + s_src(r)^2        widths at the isocentre plane
//! sigma_p(z) = sigma_p0 + g_p z,  sigma_s(z) = sigma_s0 + g_s z,  sigma_e constant
//! s_src(r) = sigma_src |r - z_c| / z_c  SAD / r        source-size penumbra
//! ```
//!
//! and `N` is fixed by the calibration: weight 1 on every beamlet of a
//! 10 x 10 cm^2 field at SSD 100 cm gives 1 Gy at the depth of maximum.
//! See `docs/dose-engine.md` for the derivation and the limits.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The generic 6 MV machine file shipped with the crate (fitted to the bands
/// of `shared/reference/photon_6mv_water.csv` by `examples/fit_generic_6mv.rs`).
pub const GENERIC_6MV_JSON: &str = include_str!("../machines/generic_6mv.json");

/// Focal-spot size and the plane that defines the field edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceParams {
    /// Gaussian sigma of the focal spot (mm, in the source plane); may be 0.
    pub sigma_mm: f64,
    /// Distance from the source to the effective collimating plane (mm),
    /// strictly between 0 and the SAD.
    pub collimator_distance_mm: f64,
}

/// Primary-photon component: attenuation, build-up and lateral spread of the
/// dose deposited by the electrons the primary photons set in motion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryParams {
    /// Effective linear attenuation coefficient `mu` in water (1/mm).
    pub attenuation_per_mm: f64,
    /// Build-up coefficient `beta` (1/mm): charged-particle equilibrium is
    /// reached over a few `1/beta`.
    pub buildup_per_mm: f64,
    /// Lateral Gaussian sigma at the surface, `sigma_p0` (mm).
    pub sigma_mm: f64,
    /// Growth of the lateral sigma with depth, `g_p` (mm per mm).
    pub sigma_per_mm_depth: f64,
}

/// Phantom-scatter component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScatterParams {
    /// Amplitude `a_s` relative to the primary.
    pub amplitude: f64,
    /// Build-up coefficient of the scatter dose, `gamma` (1/mm).
    pub buildup_per_mm: f64,
    /// Attenuation coefficient of the scatter dose, `mu_s` (1/mm).
    pub attenuation_per_mm: f64,
    /// Lateral sigma at the surface, `sigma_s0` (mm).
    pub sigma_mm: f64,
    /// Growth of the lateral sigma with depth, `g_s` (mm per mm).
    pub sigma_per_mm_depth: f64,
}

/// Contaminant-electron component: what makes the surface dose non-zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectronParams {
    /// Amplitude `a_e` relative to the primary.
    pub amplitude: f64,
    /// Decay length `lambda` (mm of water).
    pub decay_mm: f64,
    /// Lateral sigma (mm).
    pub sigma_mm: f64,
}

/// The parameters of a photon beam model, as stored in a machine file (JSON).
///
/// Every length is in mm; `Machine::new` validates them once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineParams {
    /// Name, e.g. `"generic 6 MV"`.
    pub name: String,
    /// Free text: where the parameters come from.
    #[serde(default)]
    pub description: String,
    /// Nominal accelerating potential (MV), informative.
    pub nominal_energy_mv: f64,
    /// Source-axis distance the machine was commissioned at (mm).
    pub sad_mm: f64,
    /// Source size and collimator plane.
    pub source: SourceParams,
    /// Primary component.
    pub primary: PrimaryParams,
    /// Scatter component.
    pub scatter: ScatterParams,
    /// Electron contamination.
    pub electron: ElectronParams,
}

/// Number of kernel components (primary, scatter, electrons).
pub const N_COMPONENTS: usize = 3;

/// The kernel at one point: amplitude (Gy per unit weight per unit area
/// fraction, calibration and inverse square included) and width (mm at the
/// isocentre plane) of each component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelPoint {
    /// `N (SAD/r)^2 A_k(z)` for primary, scatter, electrons.
    pub amplitude: [f64; N_COMPONENTS],
    /// `s_k` (mm at the isocentre plane).
    pub sigma_iso_mm: [f64; N_COMPONENTS],
}

impl KernelPoint {
    /// Dose of a rectangle `[x1, x2] x [y1, y2]` (isocentre plane, relative
    /// to the point's own projection) with unit fluence, exact erf.
    pub fn rectangle(&self, x1: f64, x2: f64, y1: f64, y2: f64) -> f64 {
        let mut d = 0.0;
        for k in 0..N_COMPONENTS {
            if self.amplitude[k] == 0.0 {
                continue;
            }
            let s = std::f64::consts::SQRT_2 * self.sigma_iso_mm[k];
            let fx = 0.5 * (libm::erf(x2 / s) - libm::erf(x1 / s));
            let fy = 0.5 * (libm::erf(y2 / s) - libm::erf(y1 / s));
            d += self.amplitude[k] * fx * fy;
        }
        d
    }
}

/// A rectangular open field for water-phantom calculations: half-widths
/// and centre at the isocentre plane (mm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Width along BEV x at the isocentre plane (mm).
    pub width_x_mm: f64,
    /// Width along BEV y at the isocentre plane (mm).
    pub width_y_mm: f64,
}

impl Field {
    /// A square field of side `side_mm` at the isocentre plane.
    pub fn square(side_mm: f64) -> Self {
        Self {
            width_x_mm: side_mm,
            width_y_mm: side_mm,
        }
    }
}

/// A validated beam model: parameters plus the calibration derived from them.
///
/// ```
/// use dosepaint_dose::{Field, Machine};
/// let m = Machine::generic_6mv();
/// // 1 Gy at the depth of maximum of a 10 x 10 field at SSD 100 cm.
/// let dmax = m.depth_of_maximum_mm();
/// let d = m.water_dose(Field::square(100.0), 1000.0, dmax, [0.0, 0.0]);
/// assert!((d - 1.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    params: MachineParams,
    /// Gy per unit weight per unit kernel amplitude.
    norm: f64,
    dmax_mm: f64,
}

/// The reference field side and SSD of the calibration (mm).
pub const REFERENCE_FIELD_MM: f64 = 100.0;

impl Machine {
    /// Validates the parameters and computes the calibration.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first parameter out of range.
    pub fn new(params: MachineParams) -> Result<Self> {
        validate(&params)?;
        let mut m = Self {
            params,
            norm: 1.0,
            dmax_mm: 0.0,
        };
        let sad = m.params.sad_mm;
        let field = Field::square(REFERENCE_FIELD_MM);
        let dmax = m.depth_of_maximum(field, sad);
        let d = m.water_dose(field, sad, dmax, [0.0, 0.0]);
        if !(d.is_finite() && d > 0.0) {
            return Err(Error::invalid(
                "machine parameters",
                format!(
                    "\"{}\": the reference field gives no dose at its maximum ({d})",
                    m.params.name
                ),
            ));
        }
        m.norm = 1.0 / d;
        m.dmax_mm = dmax;
        Ok(m)
    }

    /// The generic 6 MV machine shipped with the crate.
    pub fn generic_6mv() -> Self {
        Self::from_json(GENERIC_6MV_JSON).expect("the shipped generic 6 MV machine file is valid")
    }

    /// Reads a machine file (JSON).
    ///
    /// # Errors
    /// [`Error::MachineFile`] for malformed JSON or unknown fields,
    /// [`Error::InvalidParameter`] for values out of range.
    pub fn from_json(text: &str) -> Result<Self> {
        let params: MachineParams =
            serde_json::from_str(text).map_err(|e| Error::MachineFile(e.to_string()))?;
        Self::new(params)
    }

    /// The machine file (pretty JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.params).expect("machine parameters serialise")
    }

    /// The parameters.
    pub fn params(&self) -> &MachineParams {
        &self.params
    }

    /// Gy per unit weight per unit kernel amplitude (the calibration `N`).
    pub fn calibration(&self) -> f64 {
        self.norm
    }

    /// Depth of maximum of the reference field (10 x 10 cm^2, SSD = SAD), mm.
    pub fn depth_of_maximum_mm(&self) -> f64 {
        self.dmax_mm
    }

    /// Source-axis distance (mm).
    pub fn sad_mm(&self) -> f64 {
        self.params.sad_mm
    }

    /// Depth factors `A_k(z)` (before calibration and inverse square).
    #[inline]
    pub fn depth_factors(&self, z_mm: f64) -> [f64; N_COMPONENTS] {
        let p = &self.params;
        let z = z_mm.max(0.0);
        let a_p = (-p.primary.attenuation_per_mm * z).exp()
            * (1.0 - (-p.primary.buildup_per_mm * z).exp());
        let a_s = p.scatter.amplitude
            * (-p.scatter.attenuation_per_mm * z).exp()
            * (1.0 - (-p.scatter.buildup_per_mm * z).exp());
        let a_e = p.electron.amplitude * (-z / p.electron.decay_mm).exp();
        [a_p, a_s, a_e]
    }

    /// The kernel at radiological depth `z_mm` and source distance `r_mm`
    /// (along the central axis).
    #[inline]
    pub fn kernel(&self, z_mm: f64, r_mm: f64) -> KernelPoint {
        let p = &self.params;
        let sad = p.sad_mm;
        let mag = sad / r_mm;
        let isq = mag * mag;
        let a = self.depth_factors(z_mm);
        let z = z_mm.max(0.0);
        let zc = p.source.collimator_distance_mm;
        let src = p.source.sigma_mm * (r_mm - zc).abs() / zc * mag;
        let src2 = src * src;
        let phys = [
            p.primary.sigma_mm + p.primary.sigma_per_mm_depth * z,
            p.scatter.sigma_mm + p.scatter.sigma_per_mm_depth * z,
            p.electron.sigma_mm,
        ];
        let sigma = phys.map(|s| ((s * mag) * (s * mag) + src2).sqrt());
        KernelPoint {
            amplitude: a.map(|v| self.norm * isq * v),
            sigma_iso_mm: sigma,
        }
    }

    /// Dose (Gy per unit weight) of an open rectangular field centred on the
    /// axis, in a flat water phantom whose surface is at `ssd_mm` from the
    /// source and normal to the axis, at depth `depth_mm` and off-axis
    /// position `off_axis_mm` (mm in the plane at that depth).
    ///
    /// The radiological depth is the path along the fan line, as in the
    /// engine.
    pub fn water_dose(
        &self,
        field: Field,
        ssd_mm: f64,
        depth_mm: f64,
        off_axis_mm: [f64; 2],
    ) -> f64 {
        let r = ssd_mm + depth_mm;
        let [u, v] = off_axis_mm;
        let z = depth_mm * (r * r + u * u + v * v).sqrt() / r;
        let mag = self.params.sad_mm / r;
        let (x, y) = (u * mag, v * mag);
        let (hx, hy) = (0.5 * field.width_x_mm, 0.5 * field.width_y_mm);
        self.kernel(z, r)
            .rectangle(-hx - x, hx - x, -hy - y, hy - y)
    }

    /// Depth of maximum (mm) of a field at `ssd_mm` on the central axis,
    /// located to 0.01 mm.
    pub fn depth_of_maximum(&self, field: Field, ssd_mm: f64) -> f64 {
        let f = |z: f64| self.water_dose(field, ssd_mm, z, [0.0, 0.0]);
        // Coarse scan at 0.5 mm over 0..100 mm, then golden section.
        let mut best = 0.0;
        let mut best_v = f64::NEG_INFINITY;
        for n in 0..=200 {
            let z = f64::from(n) * 0.5;
            let v = f(z);
            if v > best_v {
                best_v = v;
                best = z;
            }
        }
        let (mut a, mut b) = ((best - 0.5f64).max(0.0), best + 0.5);
        let g = 0.5 * (5f64.sqrt() - 1.0);
        let mut c = b - g * (b - a);
        let mut d = a + g * (b - a);
        let (mut fc, mut fd) = (f(c), f(d));
        while b - a > 1e-3 {
            if fc > fd {
                b = d;
                d = c;
                fd = fc;
                c = b - g * (b - a);
                fc = f(c);
            } else {
                a = c;
                c = d;
                fc = fd;
                d = a + g * (b - a);
                fd = f(d);
            }
        }
        0.5 * (a + b)
    }

    /// Percentage depth dose (percent of the central-axis maximum) of a field
    /// at `ssd_mm`, at each depth in `depths_mm`.
    pub fn pdd(&self, field: Field, ssd_mm: f64, depths_mm: &[f64]) -> Vec<f64> {
        let dmax = self.depth_of_maximum(field, ssd_mm);
        let dm = self.water_dose(field, ssd_mm, dmax, [0.0, 0.0]);
        depths_mm
            .iter()
            .map(|&z| 100.0 * self.water_dose(field, ssd_mm, z, [0.0, 0.0]) / dm)
            .collect()
    }

    /// Lateral profile along x at `depth_mm` (percent of the central-axis
    /// dose at that depth), at off-axis positions `x_mm` (mm at that depth).
    pub fn profile(&self, field: Field, ssd_mm: f64, depth_mm: f64, x_mm: &[f64]) -> Vec<f64> {
        let c = self.water_dose(field, ssd_mm, depth_mm, [0.0, 0.0]);
        x_mm.iter()
            .map(|&x| 100.0 * self.water_dose(field, ssd_mm, depth_mm, [x, 0.0]) / c)
            .collect()
    }

    /// Off-axis position (mm at depth, positive side) where the x profile
    /// falls to `percent` of the central-axis dose, by bisection.
    pub fn profile_crossing(&self, field: Field, ssd_mm: f64, depth_mm: f64, percent: f64) -> f64 {
        let c = self.water_dose(field, ssd_mm, depth_mm, [0.0, 0.0]);
        let target = percent / 100.0 * c;
        let f = |x: f64| self.water_dose(field, ssd_mm, depth_mm, [x, 0.0]) - target;
        let (mut a, mut b) = (
            0.0,
            0.5 * field.width_x_mm * (ssd_mm + depth_mm) / self.params.sad_mm,
        );
        // Expand until the profile has fallen below the target.
        while f(b) > 0.0 && b < 1e4 {
            b *= 1.5;
        }
        for _ in 0..80 {
            let m = 0.5 * (a + b);
            if f(m) > 0.0 {
                a = m;
            } else {
                b = m;
            }
        }
        0.5 * (a + b)
    }

    /// 80 %-20 % penumbra (mm) of the x profile at `depth_mm`.
    pub fn penumbra_80_20(&self, field: Field, ssd_mm: f64, depth_mm: f64) -> f64 {
        self.profile_crossing(field, ssd_mm, depth_mm, 20.0)
            - self.profile_crossing(field, ssd_mm, depth_mm, 80.0)
    }

    /// Full width at 50 % of the central-axis dose of the x profile (mm).
    pub fn width_50(&self, field: Field, ssd_mm: f64, depth_mm: f64) -> f64 {
        2.0 * self.profile_crossing(field, ssd_mm, depth_mm, 50.0)
    }
}

fn check(what: &str, v: f64, ok: bool, rule: &str) -> Result<()> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("machine parameter {what}"),
            format!("{v} must be {rule}"),
        ))
    }
}

fn validate(p: &MachineParams) -> Result<()> {
    if p.name.trim().is_empty() {
        return Err(Error::invalid("machine name", "is empty"));
    }
    check(
        "nominal_energy_mv",
        p.nominal_energy_mv,
        p.nominal_energy_mv > 0.0,
        "positive",
    )?;
    check("sad_mm", p.sad_mm, p.sad_mm > 0.0, "positive")?;
    check(
        "source.sigma_mm",
        p.source.sigma_mm,
        p.source.sigma_mm >= 0.0,
        "non-negative",
    )?;
    let zc = p.source.collimator_distance_mm;
    check(
        "source.collimator_distance_mm",
        zc,
        zc > 0.0 && zc < p.sad_mm,
        "between 0 and the SAD",
    )?;
    let pr = &p.primary;
    check(
        "primary.attenuation_per_mm",
        pr.attenuation_per_mm,
        pr.attenuation_per_mm > 0.0,
        "positive",
    )?;
    check(
        "primary.buildup_per_mm",
        pr.buildup_per_mm,
        pr.buildup_per_mm > 0.0,
        "positive",
    )?;
    check(
        "primary.sigma_mm",
        pr.sigma_mm,
        pr.sigma_mm > 0.0,
        "positive",
    )?;
    check(
        "primary.sigma_per_mm_depth",
        pr.sigma_per_mm_depth,
        pr.sigma_per_mm_depth >= 0.0,
        "non-negative",
    )?;
    let s = &p.scatter;
    check(
        "scatter.amplitude",
        s.amplitude,
        s.amplitude >= 0.0,
        "non-negative",
    )?;
    check(
        "scatter.buildup_per_mm",
        s.buildup_per_mm,
        s.buildup_per_mm > 0.0,
        "positive",
    )?;
    check(
        "scatter.attenuation_per_mm",
        s.attenuation_per_mm,
        s.attenuation_per_mm >= 0.0,
        "non-negative",
    )?;
    check("scatter.sigma_mm", s.sigma_mm, s.sigma_mm > 0.0, "positive")?;
    check(
        "scatter.sigma_per_mm_depth",
        s.sigma_per_mm_depth,
        s.sigma_per_mm_depth >= 0.0,
        "non-negative",
    )?;
    let e = &p.electron;
    check(
        "electron.amplitude",
        e.amplitude,
        e.amplitude >= 0.0,
        "non-negative",
    )?;
    check(
        "electron.decay_mm",
        e.decay_mm,
        e.decay_mm > 0.0,
        "positive",
    )?;
    check(
        "electron.sigma_mm",
        e.sigma_mm,
        e.sigma_mm > 0.0,
        "positive",
    )?;
    Ok(())
}
