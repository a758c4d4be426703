//! Mappings made of mappings: the maximum or a weighted sum of several maps,
//! redistribution to the mean (or integral) dose of a uniform reference plan,
//! patient-level radiosensitivity, per-voxel bounds, and the uniform plan.
//!
//! Combinations work on their parts' painted [`DoseMap`]s and validate the
//! result once.

use dosepaint_core::{Provenance, Volume};
use dosepaint_radiobio::{Gard, LqParams, dose_for_log_cell_kill};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, dose, non_negative, positive};
use crate::inputs::MappingInputs;
use crate::mapping::{
    AdjustmentKind, DoseMap, DoseMapping, Limits, MappingReport, check_base, finish, map_via_paint,
    paint_voxels,
};
use crate::spec::MappingSpec;

/// Provenance spec of a combination: the built-in spec when every part is
/// built in, otherwise a JSON summary holding each part's own provenance spec.
fn combined_spec(
    own: Option<&MappingSpec>,
    kind: &str,
    params: &serde_json::Value,
    parts: &[&Provenance],
) -> Result<String> {
    if let Some(s) = own {
        return Ok(serde_json::to_string(s)?);
    }
    let children: Vec<serde_json::Value> = parts
        .iter()
        .map(|p| {
            serde_json::from_str(&p.spec)
                .unwrap_or_else(|_| serde_json::Value::String(p.spec.clone()))
        })
        .collect();
    Ok(serde_json::json!({
        "kind": kind,
        "custom_parts": true,
        "params": params,
        "parts": children,
    })
    .to_string())
}

fn all_specs(children: &[&dyn DoseMapping]) -> Option<Vec<MappingSpec>> {
    children.iter().map(|c| c.spec()).collect()
}

/// Paints every part, checking their grids, and merges their reports.
fn paint_parts<'a>(
    parts: impl Iterator<Item = &'a dyn DoseMapping>,
    inputs: &MappingInputs,
    what: &str,
) -> Result<(Vec<DoseMap>, MappingReport)> {
    let mut report = MappingReport::default();
    let mut maps = Vec::new();
    for p in parts {
        let mut m = p.paint(inputs)?;
        inputs.grid().ensure_same(
            m.target_gy.grid(),
            &format!("{what}: map of \"{}\"", p.describe()),
        )?;
        report.merge(std::mem::take(&mut m.report));
        maps.push(m);
    }
    Ok((maps, report))
}

/// The voxel-wise maximum of several prescriptions (e.g. a linear FMISO map
/// and an FDG contour boost). Where every part has bounds, each voxel takes
/// the bounds of the part that gave its maximum.
#[derive(Debug)]
pub struct MaxOf {
    parts: Vec<Box<dyn DoseMapping>>,
}

impl MaxOf {
    /// The maximum of `parts`.
    ///
    /// # Errors
    /// No part.
    pub fn new(parts: Vec<Box<dyn DoseMapping>>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::invalid(
                "maximum of mappings",
                "needs at least one mapping",
            ));
        }
        Ok(Self { parts })
    }
}

impl DoseMapping for MaxOf {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let (mut maps, mut report) = paint_parts(
            self.parts.iter().map(AsRef::as_ref),
            inputs,
            "maximum of mappings",
        )?;
        let description = format!(
            "maximum of [{}]",
            maps.iter()
                .map(|m| m.provenance.description.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let spec = combined_spec(
            self.spec().as_ref(),
            "max",
            &serde_json::Value::Null,
            &maps.iter().map(|m| &m.provenance).collect::<Vec<_>>(),
        )?;
        let all_bounded = maps.iter().all(|m| m.bounds.is_some());
        if !all_bounded && maps.iter().any(|m| m.bounds.is_some()) {
            report.notes.push(
                "maximum of mappings: only some parts had bounds, so the result has none".into(),
            );
        }
        let mut rest = maps.split_off(1);
        let mut first = maps.pop().expect("at least one part");
        let plane = inputs.grid().dims()[0] * inputs.grid().dims()[1];
        for other in &mut rest {
            let target = first.target_gy.as_slice_mut();
            let theirs = other.target_gy.as_slice();
            match (first.bounds.as_mut(), other.bounds.as_ref(), all_bounded) {
                (Some((lo, hi)), Some((olo, ohi)), true) => {
                    target
                        .par_chunks_mut(plane)
                        .zip(lo.as_slice_mut().par_chunks_mut(plane))
                        .zip(hi.as_slice_mut().par_chunks_mut(plane))
                        .enumerate()
                        .for_each(|(k, ((t, l), h))| {
                            for (x, ((t, l), h)) in t.iter_mut().zip(l).zip(h).enumerate() {
                                let n = k * plane + x;
                                if theirs[n] > *t {
                                    *t = theirs[n];
                                    *l = olo.as_slice()[n];
                                    *h = ohi.as_slice()[n];
                                }
                            }
                        });
                }
                _ => {
                    // Write only where the other part is higher: untouched
                    // (lazily zeroed) pages stay untouched.
                    target
                        .par_chunks_mut(plane)
                        .zip(theirs.par_chunks(plane))
                        .for_each(|(t, o)| {
                            for (t, &o) in t.iter_mut().zip(o) {
                                if o > *t {
                                    *t = o;
                                }
                            }
                        });
                }
            }
        }
        if !all_bounded {
            first.bounds = None;
        }
        first.provenance = Provenance { description, spec };
        first.report = report;
        Ok(first)
    }

    fn describe(&self) -> String {
        format!("maximum of {} mappings", self.parts.len())
    }

    fn spec(&self) -> Option<MappingSpec> {
        let parts: Vec<&dyn DoseMapping> = self.parts.iter().map(AsRef::as_ref).collect();
        all_specs(&parts).map(|mappings| MappingSpec::Max(MaxSpec { mappings }))
    }
}

/// Spec of [`MaxOf`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxSpec {
    /// The mappings whose maximum is taken.
    pub mappings: Vec<MappingSpec>,
}

/// A weighted mean of several prescriptions, `D = sum_i w_i D_i / sum_i w_i`
/// (bounds likewise, where every part has them).
#[derive(Debug)]
pub struct WeightedSum {
    parts: Vec<(f64, Box<dyn DoseMapping>)>,
}

impl WeightedSum {
    /// The weighted mean of `parts` (weights >= 0 with a positive sum; they
    /// are normalised).
    ///
    /// # Errors
    /// No part, or invalid weights.
    pub fn new(parts: Vec<(f64, Box<dyn DoseMapping>)>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::invalid(
                "weighted mappings",
                "needs at least one mapping",
            ));
        }
        let mut total = 0.0;
        for (k, (w, _)) in parts.iter().enumerate() {
            total += non_negative(&format!("weighted mappings weight {k}"), *w)?;
        }
        if total.is_nan() || total <= 0.0 {
            return Err(Error::invalid(
                "weighted mappings",
                "weights must sum to a positive number",
            ));
        }
        Ok(Self { parts })
    }
}

impl DoseMapping for WeightedSum {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let total: f64 = self.parts.iter().map(|(w, _)| w).sum();
        let weights: Vec<f64> = self.parts.iter().map(|(w, _)| w / total).collect();
        let (maps, report) = paint_parts(
            self.parts.iter().map(|(_, p)| p.as_ref()),
            inputs,
            "weighted mappings",
        )?;
        let n = inputs.grid().n_voxels();
        let plane = inputs.grid().dims()[0] * inputs.grid().dims()[1];
        let combine = |f: &dyn Fn(&DoseMap) -> &Volume<f32>| -> Result<Volume<f32>> {
            let sources: Vec<&[f32]> = maps.iter().map(|m| f(m).as_slice()).collect();
            let mut out = vec![0.0f32; n];
            out.par_chunks_mut(plane).enumerate().for_each(|(k, o)| {
                for (local, o) in o.iter_mut().enumerate() {
                    let v = k * plane + local;
                    let sum: f64 = sources
                        .iter()
                        .zip(&weights)
                        .map(|(s, w)| w * f64::from(s[v]))
                        .sum();
                    if sum != 0.0 {
                        *o = sum as f32;
                    }
                }
            });
            Ok(Volume::from_vec(inputs.grid().clone(), out)?)
        };
        let target_gy = combine(&|m| &m.target_gy)?;
        let bounds = if maps.iter().all(|m| m.bounds.is_some()) {
            Some((
                combine(&|m| &m.bounds.as_ref().expect("checked").0)?,
                combine(&|m| &m.bounds.as_ref().expect("checked").1)?,
            ))
        } else {
            None
        };
        let description = format!(
            "weighted mean of [{}]",
            maps.iter()
                .zip(&weights)
                .map(|(m, w)| format!("{w:.3} x {}", m.provenance.description))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let spec = combined_spec(
            self.spec().as_ref(),
            "weighted",
            &serde_json::json!({ "weights": weights }),
            &maps.iter().map(|m| &m.provenance).collect::<Vec<_>>(),
        )?;
        Ok(DoseMap {
            target_gy,
            bounds,
            provenance: Provenance { description, spec },
            report,
        })
    }

    fn describe(&self) -> String {
        format!("weighted mean of {} mappings", self.parts.len())
    }

    fn spec(&self) -> Option<MappingSpec> {
        let components: Option<Vec<WeightedComponent>> = self
            .parts
            .iter()
            .map(|(w, p)| {
                p.spec().map(|mapping| WeightedComponent {
                    weight: *w,
                    mapping,
                })
            })
            .collect();
        components.map(|components| MappingSpec::Weighted(WeightedSpec { components }))
    }
}

/// Spec of [`WeightedSum`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedSpec {
    /// The weighted mappings.
    pub components: Vec<WeightedComponent>,
}

/// One weighted mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedComponent {
    /// Weight (>= 0).
    pub weight: f64,
    /// The mapping.
    pub mapping: MappingSpec,
}

/// Which quantity of a uniform reference plan a redistribution keeps.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conserve {
    /// The mean dose over the target equals the reference dose; only target
    /// voxels are rescaled (the base region keeps its dose).
    #[default]
    MeanTargetDose,
    /// The integral dose (sum of dose x voxel volume, Gy cm^3) over the target
    /// and base region equals that of the uniform plan giving the reference
    /// dose to the target and `reference_base_dose_gy` to the rest of the base
    /// region; every voxel of both is rescaled.
    IntegralDose,
}

/// How a painted map is rescaled.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rescale {
    /// `D' = k D`.
    #[default]
    Proportional,
    /// `D' = B + k (D - B)` for `D >= B`: the dose above a baseline (e.g. the
    /// base dose) is rescaled and the baseline kept; voxels below it are left
    /// unchanged (and reported).
    AboveBaseline {
        /// The baseline (Gy).
        baseline_gy: f64,
    },
}

/// Spec of a redistribution: rescale a painted map so that it keeps the mean
/// target dose (or the integral dose) of a uniform reference plan, as in
/// iso-mean-dose redistribution studies (e.g. Søvik et al. 2007, Int J Radiat
/// Oncol Biol Phys 68:1496). With a floor or cap the scale factor is found by
/// bisection, so both still hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedistributeSpec {
    /// The painted mapping.
    pub mapping: Box<MappingSpec>,
    /// Dose of the uniform reference plan in the target (Gy).
    pub reference_dose_gy: f64,
    /// The conserved quantity.
    #[serde(default)]
    pub conserve: Conserve,
    /// Reference plan dose to the base region outside the target (Gy), for
    /// [`Conserve::IntegralDose`]; the reference dose if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_base_dose_gy: Option<f64>,
    /// How to rescale.
    #[serde(default)]
    pub rescale: Rescale,
    /// Dose floor after rescaling (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_gy: Option<f64>,
    /// Dose cap after rescaling (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_gy: Option<f64>,
}

/// Redistribution of any mapping (see [`RedistributeSpec`]).
#[derive(Debug)]
pub struct Redistribute {
    inner: Box<dyn DoseMapping>,
    params: RedistributeSpec,
    limits: Limits,
}

impl Redistribute {
    /// Wraps `inner`; `params.mapping` is ignored (the spec of `inner` is used).
    ///
    /// # Errors
    /// Invalid doses or limits.
    pub fn new(inner: Box<dyn DoseMapping>, params: RedistributeSpec) -> Result<Self> {
        dose("redistribution reference_dose_gy", params.reference_dose_gy)?;
        if let Some(b) = params.reference_base_dose_gy {
            dose("redistribution reference_base_dose_gy", b)?;
        }
        if let Rescale::AboveBaseline { baseline_gy } = params.rescale {
            dose("redistribution baseline_gy", baseline_gy)?;
        }
        let limits = Limits::new(params.floor_gy, params.cap_gy, "redistribution")?;
        Ok(Self {
            inner,
            params,
            limits,
        })
    }
}

/// Sum over `voxels` of `f(voxel)` in fixed chunks, combined in order (the
/// same bits for any number of threads).
fn chunked_sum(voxels: &[u32], f: impl Fn(usize) -> (f64, f64) + Sync) -> (f64, f64) {
    voxels
        .par_chunks(4096)
        .map(|c| {
            c.iter().fold((0.0, 0.0), |(a, b), &v| {
                let (x, y) = f(v as usize);
                (a + x, b + y)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y))
}

impl DoseMapping for Redistribute {
    map_via_paint!();

    #[allow(clippy::too_many_lines)]
    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let mut inner = self.inner.paint(inputs)?;
        inputs
            .grid()
            .ensure_same(inner.target_gy.grid(), "redistribution: inner map")?;
        let mut report = std::mem::take(&mut inner.report);
        if inner.bounds.take().is_some() {
            report.notes.push(
                "redistribution: the inner mapping's bounds were dropped (wrap the \
                 redistribution in `bounded` to set bounds on the rescaled map)"
                    .into(),
            );
        }
        let p = &self.params;
        let d = inner.target_gy.as_slice();
        let target = inputs.target_mask();
        let target_idx = inputs.target_indices();
        let rest: Vec<u32> = match inputs.base_region() {
            Some(_) => inputs
                .region_indices(crate::inputs::BASE)?
                .iter()
                .copied()
                .filter(|&v| !target[v as usize])
                .collect(),
            None => Vec::new(),
        };
        let (rescaled, goal): (Vec<u32>, f64) = match p.conserve {
            Conserve::MeanTargetDose => (
                target_idx.to_vec(),
                p.reference_dose_gy * target_idx.len() as f64,
            ),
            Conserve::IntegralDose => {
                let mut all: Vec<u32> = target_idx.iter().chain(&rest).copied().collect();
                all.sort_unstable();
                (
                    all,
                    p.reference_dose_gy * target_idx.len() as f64
                        + p.reference_base_dose_gy.unwrap_or(p.reference_dose_gy)
                            * rest.len() as f64,
                )
            }
        };
        let baseline = match p.rescale {
            Rescale::Proportional => 0.0,
            Rescale::AboveBaseline { baseline_gy } => baseline_gy,
        };
        // Voxels below the baseline are held fixed.
        let (moving, fixed): (Vec<u32>, Vec<u32>) = rescaled
            .into_iter()
            .partition(|&v| f64::from(d[v as usize]) >= baseline);
        report.adjust(
            &self.describe(),
            AdjustmentKind::BelowRedistributionFloor,
            baseline,
            fixed.len(),
        );
        let fixed_sum: f64 = fixed.iter().map(|&v| f64::from(d[v as usize])).sum();
        let lo = self.limits.floor.unwrap_or(0.0);
        let hi = self.limits.cap.unwrap_or(f64::INFINITY);
        // g(k) = sum of the rescaled doses (+ fixed ones) and its slope: g is
        // continuous, piecewise linear and non-decreasing in k.
        let g = |k: f64| -> (f64, f64) {
            let (sum, slope) = chunked_sum(&moving, |v| {
                let e = f64::from(d[v]) - baseline;
                let x = baseline + k * e;
                if x < lo {
                    (lo, 0.0)
                } else if x > hi {
                    (hi, 0.0)
                } else {
                    (x, e)
                }
            });
            (sum + fixed_sum, slope)
        };
        let (excess, _) = chunked_sum(&moving, |v| (f64::from(d[v]) - baseline, 0.0));
        if excess.is_nan() || excess <= 0.0 {
            return Err(Error::invalid(
                "redistribution",
                "the painted map has no dose above the baseline to rescale",
            ));
        }
        let tol = 1e-10 * goal.abs().max(1.0);
        let (g0, _) = g(0.0);
        if goal < g0 - tol {
            return Err(Error::invalid(
                "redistribution",
                format!(
                    "the reference total {goal:.4} Gy (voxel sum) is below what the floor and \
                     baseline already give ({g0:.4} Gy)"
                ),
            ));
        }
        // Safeguarded Newton on g (exact within a linear piece), starting from
        // the closed form that holds when no limit binds.
        let mut k_lo = 0.0;
        let mut k_hi = f64::INFINITY;
        let mut k = ((goal - fixed_sum - baseline * moving.len() as f64) / excess).max(0.0);
        let mut converged = false;
        for _ in 0..200 {
            let (gk, slope) = g(k);
            if (gk - goal).abs() <= tol {
                converged = true;
                break;
            }
            if gk < goal {
                k_lo = k;
            } else {
                k_hi = k;
            }
            let newton = if slope > 0.0 {
                k + (goal - gk) / slope
            } else {
                f64::NAN
            };
            k = if newton > k_lo && newton < k_hi {
                newton
            } else if k_hi.is_finite() {
                0.5 * (k_lo + k_hi)
            } else {
                // No slope left and still below the goal: every moving voxel
                // is at the cap.
                if slope <= 0.0 && gk < goal && k > 0.0 {
                    break;
                }
                2.0 * k.max(1.0)
            };
            if k_hi.is_finite() && k_hi - k_lo <= 1e-15 * k_hi {
                converged = true;
                break;
            }
        }
        if !converged {
            return Err(Error::invalid(
                "redistribution",
                format!(
                    "the reference total {goal:.4} Gy (voxel sum) cannot be reached with the \
                     cap of {hi} Gy"
                ),
            ));
        }
        let (mut floored, mut capped) = (0, 0);
        let out = inner.target_gy.as_slice_mut();
        for &v in &moving {
            let v = v as usize;
            let x = baseline + k * (f64::from(out[v]) - baseline);
            out[v] = if x < lo {
                floored += 1;
                lo
            } else if x > hi {
                capped += 1;
                hi
            } else {
                x
            } as f32;
        }
        report.notes.push(format!(
            "redistribution: scale factor {k:.6} ({:?}, {:?})",
            p.conserve, p.rescale
        ));
        let description = format!(
            "{} redistributed to {:?} of a uniform {} Gy plan",
            inner.provenance.description, p.conserve, p.reference_dose_gy
        );
        let spec = if let Some(s) = self.spec() {
            serde_json::to_string(&s)?
        } else {
            let mut params = serde_json::to_value(p)?;
            if let Some(obj) = params.as_object_mut() {
                obj.remove("mapping");
            }
            combined_spec(None, "redistribute", &params, &[&inner.provenance])?
        };
        if let Some(f) = self.limits.floor {
            report.adjust(&description, AdjustmentKind::RaisedToFloor, f, floored);
        }
        if let Some(c) = self.limits.cap {
            report.adjust(&description, AdjustmentKind::LoweredToCap, c, capped);
        }
        Ok(DoseMap {
            target_gy: inner.target_gy,
            bounds: None,
            provenance: Provenance { description, spec },
            report,
        })
    }

    fn describe(&self) -> String {
        format!("redistribution of ({})", self.inner.describe())
    }

    fn spec(&self) -> Option<MappingSpec> {
        self.inner.spec().map(|m| {
            let mut s = self.params.clone();
            s.mapping = Box::new(m);
            MappingSpec::Redistribute(s)
        })
    }
}

/// A patient's radiosensitivity, relative to the population (reference) LQ
/// parameters the mappings were written for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientRadiosensitivity {
    /// From the radiosensitivity index (RSI, a gene-expression SF2) through
    /// GARD (Scott et al. 2017): `alpha = -ln(RSI)/2 - 2 beta`, beta = 0.05 Gy^-2.
    Rsi(f64),
    /// Explicit patient LQ parameters.
    Lq(LqParams),
    /// The reference alpha and beta both multiplied by this factor (> 0;
    /// alpha/beta unchanged).
    AlphaScale(f64),
}

impl PatientRadiosensitivity {
    /// The patient's LQ parameters.
    ///
    /// # Errors
    /// An RSI outside GARD's range or a non-positive scale.
    pub fn lq(&self, reference: &LqParams) -> Result<LqParams> {
        Ok(match *self {
            PatientRadiosensitivity::Rsi(rsi) => Gard::from_rsi(rsi)?.lq(),
            PatientRadiosensitivity::Lq(lq) => lq,
            PatientRadiosensitivity::AlphaScale(f) => {
                positive("patient alpha scale", f)?;
                LqParams::new(reference.alpha_per_gy() * f, reference.beta_per_gy2() * f)?
            }
        })
    }
}

/// Spec of [`PatientAdjusted`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientSpec {
    /// The mapping written for the reference (population) radiosensitivity.
    pub mapping: Box<MappingSpec>,
    /// The reference LQ parameters.
    pub reference_lq: LqParams,
    /// The patient's radiosensitivity.
    pub patient: PatientRadiosensitivity,
}

/// Patient-level radiosensitivity applied to every voxel of any mapping: the
/// dose `D'` that gives the patient's cells the log cell kill the reference
/// cells get from the mapped dose `D` in the same `n` fractions,
/// `alpha_p D' + beta_p D'^2 / n = alpha D + beta D^2 / n` (bounds likewise).
/// A radioresistant patient (lower alpha) gets more dose everywhere.
#[derive(Debug)]
pub struct PatientAdjusted {
    inner: Box<dyn DoseMapping>,
    reference: LqParams,
    patient: PatientRadiosensitivity,
    patient_lq: LqParams,
}

impl PatientAdjusted {
    /// Wraps `inner`.
    ///
    /// # Errors
    /// As [`PatientRadiosensitivity::lq`].
    pub fn new(
        inner: Box<dyn DoseMapping>,
        reference: LqParams,
        patient: PatientRadiosensitivity,
    ) -> Result<Self> {
        let patient_lq = patient.lq(&reference)?;
        Ok(Self {
            inner,
            reference,
            patient,
            patient_lq,
        })
    }

    /// The patient's LQ parameters.
    pub fn patient_lq(&self) -> LqParams {
        self.patient_lq
    }
}

impl DoseMapping for PatientAdjusted {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let mut inner = self.inner.paint(inputs)?;
        let n = inputs.fractions();
        let convert = |v: &mut Volume<f32>| -> Result<()> {
            let grid = v.grid().clone();
            let first_error = v
                .as_slice_mut()
                .par_iter_mut()
                .enumerate()
                .map(|(i, d)| {
                    let e = self.reference.effect(f64::from(*d), n);
                    match dose_for_log_cell_kill(&self.patient_lq, e, n) {
                        Ok(x) => {
                            *d = x as f32;
                            None
                        }
                        Err(e) => Some((i, e)),
                    }
                })
                .flatten()
                .min_by_key(|(i, _)| *i);
            match first_error {
                Some((i, e)) => Err(Error::voxel(
                    "patient radiosensitivity conversion",
                    grid.voxel_index(i),
                    e.to_string(),
                )),
                None => Ok(()),
            }
        };
        convert(&mut inner.target_gy)?;
        if let Some((lo, hi)) = inner.bounds.as_mut() {
            convert(lo)?;
            convert(hi)?;
        }
        let description = format!(
            "{} adjusted to the patient's radiosensitivity (alpha {:.4} /Gy, beta {:.4} /Gy^2 vs \
             reference {:.4}, {:.4})",
            inner.provenance.description,
            self.patient_lq.alpha_per_gy(),
            self.patient_lq.beta_per_gy2(),
            self.reference.alpha_per_gy(),
            self.reference.beta_per_gy2()
        );
        let spec = match self.spec() {
            Some(s) => serde_json::to_string(&s)?,
            None => combined_spec(
                None,
                "patient_radiosensitivity",
                &serde_json::json!({ "reference_lq": self.reference, "patient": self.patient }),
                &[&inner.provenance],
            )?,
        };
        inner.provenance = Provenance { description, spec };
        Ok(inner)
    }

    fn describe(&self) -> String {
        format!("patient-adjusted ({})", self.inner.describe())
    }

    fn spec(&self) -> Option<MappingSpec> {
        self.inner.spec().map(|m| {
            MappingSpec::PatientRadiosensitivity(PatientSpec {
                mapping: Box::new(m),
                reference_lq: self.reference,
                patient: self.patient,
            })
        })
    }
}

/// Spec of [`Bounded`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundedSpec {
    /// The mapping.
    pub mapping: Box<MappingSpec>,
    /// Minimum acceptable dose as a fraction of the target (e.g. 0.95).
    pub lower: f32,
    /// Maximum acceptable dose as a fraction of the target (e.g. 1.05).
    pub upper: f32,
}

/// Per-voxel acceptable bounds at fixed fractions of the painted dose (what
/// an optimizer's min/max objectives and the evaluation's Q use).
#[derive(Debug)]
pub struct Bounded {
    inner: Box<dyn DoseMapping>,
    lower: f32,
    upper: f32,
}

impl Bounded {
    /// Wraps `inner` with bounds `lower x D` and `upper x D`.
    ///
    /// # Errors
    /// Unless `0 < lower <= 1 <= upper`, finite.
    pub fn new(inner: Box<dyn DoseMapping>, lower: f32, upper: f32) -> Result<Self> {
        if !(lower.is_finite() && upper.is_finite() && lower > 0.0 && lower <= 1.0 && upper >= 1.0)
        {
            return Err(Error::invalid(
                "relative bounds",
                format!("need 0 < lower <= 1 <= upper, got {lower} and {upper}"),
            ));
        }
        Ok(Self {
            inner,
            lower,
            upper,
        })
    }
}

impl DoseMapping for Bounded {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let mut inner = self.inner.paint(inputs)?;
        let spec = match self.spec() {
            Some(s) => serde_json::to_string(&s)?,
            None => combined_spec(
                None,
                "bounded",
                &serde_json::json!({ "lower": self.lower, "upper": self.upper }),
                &[&inner.provenance],
            )?,
        };
        let description = format!(
            "{} with bounds {}-{} x target",
            inner.provenance.description, self.lower, self.upper
        );
        let (lower, upper) = (self.lower, self.upper);
        let t = &inner.target_gy;
        inner.bounds = Some((t.map(|&d| d * lower), t.map(|&d| d * upper)));
        inner.provenance = Provenance { description, spec };
        Ok(inner)
    }

    fn describe(&self) -> String {
        format!("bounded ({})", self.inner.describe())
    }

    fn spec(&self) -> Option<MappingSpec> {
        self.inner.spec().map(|m| {
            MappingSpec::Bounded(BoundedSpec {
                mapping: Box::new(m),
                lower: self.lower,
                upper: self.upper,
            })
        })
    }
}

/// Spec of a uniform prescription (the reference plan of a redistribution,
/// or a conventional plan to compare with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniformSpec {
    /// Dose to the target (Gy).
    pub dose_gy: f64,
    /// Dose to the base region outside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dose_gy: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Uniform {
    spec: UniformSpec,
}

impl Uniform {
    pub(crate) fn new(spec: &UniformSpec) -> Result<Self> {
        positive("uniform dose_gy", spec.dose_gy)?;
        check_base(spec.base_dose_gy, "uniform")?;
        Ok(Self { spec: spec.clone() })
    }
}

impl DoseMapping for Uniform {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let d = self.spec.dose_gy;
        let painted = paint_voxels(
            inputs,
            self.spec.base_dose_gy,
            Limits::default(),
            "uniform",
            |_, _| Ok(d),
        )?;
        finish(
            inputs,
            painted,
            Limits::default(),
            self.describe(),
            serde_json::to_string(&MappingSpec::Uniform(self.spec.clone()))?,
            MappingReport::default(),
        )
    }

    fn describe(&self) -> String {
        match self.spec.base_dose_gy {
            Some(b) => format!("uniform {} Gy (base region {b} Gy)", self.spec.dose_gy),
            None => format!("uniform {} Gy", self.spec.dose_gy),
        }
    }

    fn spec(&self) -> Option<MappingSpec> {
        Some(MappingSpec::Uniform(self.spec.clone()))
    }
}
