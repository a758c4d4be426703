//! Dose painting by contours: boost subvolumes from threshold rules inside the
//! target, cleaned by connected components and grown by a margin, delivered
//! as a simultaneous integrated boost (SIB).

use dosepaint_core::{Structure, StructureRole, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, dose, non_negative, positive};
use crate::image::{ImageSource, Mm3, Prepared, ReferenceStatistic, percentile, prepare};
use crate::inputs::MappingInputs;
use crate::mapping::{DoseMap, DoseMapping, Limits, MappingReport, map_via_paint, paint_voxels};
use crate::morphology::{Connectivity, clean, dilate};
use crate::spec::MappingSpec;

/// How a boost subvolume is cut from an image inside its enclosing region.
///
/// In a spec: `{"above": 2.5}`, `{"below": 0.0011}`, `{"fraction_of_max": 0.5}`,
/// `{"ratio_to_reference": {"region": "blood", "ratio": 1.3}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// `I >= value` (absolute, in the prepared image's unit).
    Above(f64),
    /// `I < value` (e.g. ADC below a value in mm^2/s).
    Below(f64),
    /// `I >= fraction * max(I in the target)`: FDG 40-50 % of SUVmax.
    FractionOfMax(f64),
    /// `I >= ratio * stat(I in region)`: FMISO tumour-to-blood ratio >= 1.2-1.4.
    RatioToReference {
        /// The reference region (e.g. `"blood"`, `"muscle"`).
        region: String,
        /// The ratio (> 0).
        ratio: f64,
        /// The statistic of the reference region.
        #[serde(default)]
        statistic: ReferenceStatistic,
    },
}

impl ThresholdRule {
    fn check(&self, what: &str) -> Result<()> {
        match self {
            ThresholdRule::Above(v) | ThresholdRule::Below(v) => {
                crate::error::finite(what, *v)?;
            }
            ThresholdRule::FractionOfMax(f) => {
                if !(f.is_finite() && *f > 0.0 && *f <= 1.0) {
                    return Err(Error::invalid(
                        what,
                        format!("fraction of max {f} must be in (0, 1]"),
                    ));
                }
            }
            ThresholdRule::RatioToReference { ratio, .. } => {
                positive(what, *ratio)?;
            }
        }
        Ok(())
    }

    /// The threshold and whether voxels at or above it (`true`) or below it
    /// (`false`) are selected.
    fn resolve(&self, img: &Prepared<'_>, inputs: &MappingInputs) -> Result<(f64, bool)> {
        Ok(match self {
            ThresholdRule::Above(v) => (*v, true),
            ThresholdRule::Below(v) => (*v, false),
            ThresholdRule::FractionOfMax(f) => {
                let max = inputs
                    .target_indices()
                    .par_iter()
                    .map(|&n| img.at(n as usize))
                    .reduce(|| f64::NEG_INFINITY, f64::max);
                if max.is_nan() || max <= 0.0 {
                    return Err(Error::image(
                        &img.name,
                        format!(
                            "maximum inside the target is {max}; a fraction of it is no threshold"
                        ),
                    ));
                }
                (f * max, true)
            }
            ThresholdRule::RatioToReference {
                region,
                ratio,
                statistic,
            } => {
                let mut values = img.values_at(inputs.region_indices(region)?);
                let reference = match statistic {
                    ReferenceStatistic::Mean => values.iter().sum::<f64>() / values.len() as f64,
                    ReferenceStatistic::Median => percentile(&mut values, 50.0),
                };
                if reference.is_nan() || reference <= 0.0 {
                    return Err(Error::region(
                        region.as_str(),
                        format!(
                            "reference {statistic:?} of image \"{}\" is {reference}; a ratio \
                             threshold needs a positive reference",
                            img.name
                        ),
                    ));
                }
                (ratio * reference, true)
            }
        })
    }
}

/// One boost level of a contour mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContourLevelSpec {
    /// Name of the subvolume structure (e.g. `"BTV_FDG50"`).
    pub name: String,
    /// The image and its preparation.
    pub image: ImageSource,
    /// The threshold rule.
    pub rule: ThresholdRule,
    /// Total dose to the subvolume (Gy), at least the base dose.
    pub dose_gy: f64,
    /// Connected components smaller than this are removed (cm^3).
    #[serde(default)]
    pub min_volume_cm3: f64,
    /// Margin added after the cleanup (mm, one number or `[x, y, z]`), clipped
    /// to the enclosing region.
    #[serde(default, skip_serializing_if = "Mm3::is_zero")]
    pub margin_mm: Mm3,
    /// Neighbourhood of the connected-component cleanup.
    #[serde(default)]
    pub connectivity: Connectivity,
}

impl ContourLevelSpec {
    /// A level cutting `rule` from `image`, boosted to `dose_gy`, without
    /// cleanup or margin.
    pub fn new(
        name: impl Into<String>,
        image: ImageSource,
        rule: ThresholdRule,
        dose_gy: f64,
    ) -> Self {
        Self {
            name: name.into(),
            image,
            rule,
            dose_gy,
            min_volume_cm3: 0.0,
            margin_mm: Mm3::default(),
            connectivity: Connectivity::Full,
        }
    }
}

/// Dose painting by contours as a simultaneous integrated boost: every
/// fraction gives `base_dose_gy / n` to the target (and the base region) and
/// each level's dose / n to its subvolume, in the same `n` fractions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContourSpec {
    /// Total dose to the target (Gy).
    pub base_dose_gy: f64,
    /// Dose to the base region outside the target (Gy); the base dose if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_region_dose_gy: Option<f64>,
    /// The boost levels, in order.
    pub levels: Vec<ContourLevelSpec>,
    /// Nested levels: each level is cut inside the previous one (and its
    /// margin clipped to it), and doses must not decrease. Otherwise every
    /// level is cut inside the target and overlaps take the higher dose.
    #[serde(default = "yes")]
    pub nested: bool,
    /// alpha/beta (Gy) for the EQD2 of each level in the report.
    #[serde(default = "ten")]
    pub alpha_beta_gy: f64,
}

fn yes() -> bool {
    true
}

fn ten() -> f64 {
    10.0
}

impl ContourSpec {
    /// A SIB of `base_dose_gy` to the target with the given levels (nested,
    /// EQD2 reported at alpha/beta = 10 Gy).
    pub fn new(base_dose_gy: f64, levels: Vec<ContourLevelSpec>) -> Self {
        Self {
            base_dose_gy,
            base_region_dose_gy: None,
            levels,
            nested: true,
            alpha_beta_gy: 10.0,
        }
    }
}

/// A SIB dose level: total, per fraction and EQD2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SibLevel {
    /// The level (the target's name for the base level).
    pub name: String,
    /// Total dose (Gy).
    pub dose_gy: f64,
    /// Dose per fraction (Gy).
    pub dose_per_fraction_gy: f64,
    /// EQD2 at `alpha_beta_gy` (Gy).
    pub eqd2_gy: f64,
    /// The alpha/beta used (Gy).
    pub alpha_beta_gy: f64,
    /// Number of fractions.
    pub fractions: u32,
    /// Volume of the level's structure (cm^3).
    pub volume_cm3: f64,
    /// Connected components kept by the cleanup.
    pub components_kept: usize,
    /// Connected components removed for being smaller than the minimum volume.
    pub components_removed: usize,
}

/// Total, per-fraction dose and EQD2 of each level of a SIB: `base` then the
/// `boosts`, all in `fractions` fractions, EQD2 at `alpha_beta_gy`.
///
/// ```
/// use dosepaint_biomap::sib_doses;
/// // FLAME (Kerkmeijer et al. 2021): 77 Gy / 35 to the prostate, focal boost up to
/// // 95 Gy; alpha/beta 1.5 Gy gives EQD2 81.4 and 114.4 Gy
/// // (shared/reference/radiobiology.csv).
/// let levels = sib_doses(77.0, &[95.0], 35, 1.5)?;
/// assert!((levels[0].1 - 2.2).abs() < 1e-12);
/// assert!((levels[0].2 - 81.4).abs() < 0.05 && (levels[1].2 - 114.4).abs() < 0.05);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
///
/// # Errors
/// A negative dose, zero fractions or a non-positive alpha/beta.
pub fn sib_doses(
    base_gy: f64,
    boosts_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: f64,
) -> Result<Vec<(f64, f64, f64)>> {
    std::iter::once(base_gy)
        .chain(boosts_gy.iter().copied())
        .map(|d| {
            let eqd2 = dosepaint_radiobio::eqd2(d, fractions, alpha_beta_gy)?;
            Ok((d, d / f64::from(fractions), eqd2))
        })
        .collect()
}

/// A validated contour (SIB) mapping.
#[derive(Debug, Clone)]
pub(crate) struct ContourMapping {
    spec: ContourSpec,
}

impl ContourMapping {
    pub(crate) fn new(s: &ContourSpec) -> Result<Self> {
        dose("contour mapping base_dose_gy", s.base_dose_gy)?;
        if let Some(b) = s.base_region_dose_gy {
            dose("contour mapping base_region_dose_gy", b)?;
        }
        positive("contour mapping alpha_beta_gy", s.alpha_beta_gy)?;
        if s.levels.is_empty() {
            return Err(Error::invalid(
                "contour mapping",
                "needs at least one level",
            ));
        }
        let mut previous = s.base_dose_gy;
        for (k, l) in s.levels.iter().enumerate() {
            let what = format!("contour level {k} (\"{}\")", l.name);
            if l.name.trim().is_empty() {
                return Err(Error::invalid(&what, "the name is empty"));
            }
            l.image.check()?;
            l.rule.check(&format!("{what} threshold"))?;
            dose(&format!("{what} dose_gy"), l.dose_gy)?;
            non_negative(&format!("{what} min_volume_cm3"), l.min_volume_cm3)?;
            l.margin_mm.check(&format!("{what} margin"))?;
            if l.dose_gy < s.base_dose_gy {
                return Err(Error::invalid(
                    &what,
                    format!(
                        "boost dose {} Gy is below the base dose {} Gy",
                        l.dose_gy, s.base_dose_gy
                    ),
                ));
            }
            if s.nested && l.dose_gy < previous {
                return Err(Error::invalid(
                    &what,
                    format!(
                        "nested levels need non-decreasing doses: {} Gy follows {previous} Gy",
                        l.dose_gy
                    ),
                ));
            }
            previous = l.dose_gy;
        }
        Ok(Self { spec: s.clone() })
    }

    fn label(&self) -> String {
        let levels: Vec<String> = self
            .spec
            .levels
            .iter()
            .map(|l| format!("{} {} Gy", l.name, l.dose_gy))
            .collect();
        format!(
            "SIB by contours: {} Gy + {}",
            self.spec.base_dose_gy,
            levels.join(", ")
        )
    }

    /// The level structures and their cleanup counts.
    fn levels(&self, inputs: &MappingInputs) -> Result<Vec<(Structure, usize, usize)>> {
        let grid = inputs.grid();
        let [nx, ny, _] = grid.dims();
        let plane = nx * ny;
        let target = inputs.target_mask();
        // Every level lies inside the target: work in its box only (the rest
        // of each lazily zeroed mask is never touched).
        let w = inputs.target_window();
        let mut out: Vec<(Structure, usize, usize)> = Vec::with_capacity(self.spec.levels.len());
        for l in &self.spec.levels {
            let within: &[bool] = match (self.spec.nested, out.last()) {
                (true, Some((prev, _, _))) => prev.mask().as_slice(),
                _ => target,
            };
            let img = prepare(&l.image, inputs)?;
            let (threshold, above) = l.rule.resolve(&img, inputs)?;
            let mut candidate = vec![false; within.len()];
            w.par_slices_mut(&mut candidate, plane).for_each(|(k, c)| {
                for j in w.lo[1]..=w.hi[1] {
                    for i in w.lo[0]..=w.hi[0] {
                        let n = k * plane + j * nx + i;
                        if within[n] {
                            let v = img.at(n);
                            c[j * nx + i] = if above { v >= threshold } else { v < threshold };
                        }
                    }
                }
            });
            let (kept, removed) = clean(grid, &mut candidate, l.min_volume_cm3, l.connectivity, w);
            let margin = l.margin_mm.check("contour margin")?;
            let mut grown = candidate;
            dilate(grid, &mut grown, margin, w)?;
            // Clip to the enclosing region (the margin may have left the box,
            // but not its margin-grown version).
            let s = grid.spacing_mm();
            let reach = [0, 1, 2].map(|a| (margin[a] / s[a]).ceil() as usize);
            let gw = w.grown(reach, grid);
            gw.par_slices_mut(&mut grown, plane).for_each(|(k, g)| {
                for (g, &wn) in g.iter_mut().zip(&within[k * plane..]) {
                    if *g && !wn {
                        *g = false;
                    }
                }
            });
            let s = Structure::new(
                l.name.clone(),
                StructureRole::Target,
                Volume::from_vec(grid.clone(), grown)?,
            )?;
            out.push((s, kept, removed));
        }
        Ok(out)
    }
}

impl DoseMapping for ContourMapping {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let levels = self.levels(inputs)?;
        let grid = inputs.grid();
        let n = inputs.fractions();
        let ab = self.spec.alpha_beta_gy;
        let base = self.spec.base_dose_gy;
        let base_region = self.spec.base_region_dose_gy.unwrap_or(base);
        let painted = paint_voxels(
            inputs,
            Some(base_region),
            Limits::default(),
            "contour mapping",
            |_, _| Ok(base),
        )?;
        let mut dose = painted.dose;
        let plane = grid.dims()[0] * grid.dims()[1];
        let w = inputs.target_window();
        let mut report = MappingReport::default();
        let voxel_cm3 = grid.voxel_volume_cm3();
        let (_, per_fraction, eqd2) = sib_doses(base, &[], n, ab)?[0];
        report.sib_levels.push(SibLevel {
            name: inputs.target().name().to_string(),
            dose_gy: base,
            dose_per_fraction_gy: per_fraction,
            eqd2_gy: eqd2,
            alpha_beta_gy: ab,
            fractions: n,
            volume_cm3: inputs.target().volume_cm3(),
            components_kept: 1,
            components_removed: 0,
        });
        for ((s, kept, removed), l) in levels.into_iter().zip(&self.spec.levels) {
            let d = l.dose_gy as f32;
            let mask = s.mask().as_slice();
            let count: usize = w
                .par_slices_mut(&mut dose, plane)
                .map(|(k, o)| {
                    let mut count = 0;
                    for (local, o) in o.iter_mut().enumerate() {
                        if mask[k * plane + local] {
                            count += 1;
                            *o = o.max(d);
                        }
                    }
                    count
                })
                .sum();
            if count == 0 {
                report.notes.push(format!(
                    "contour level \"{}\" is empty: no voxel of its enclosing region met the \
                     threshold (or every component was below {} cm^3)",
                    l.name, l.min_volume_cm3
                ));
            }
            if removed > 0 {
                report.notes.push(format!(
                    "contour level \"{}\": removed {removed} connected component(s) smaller than \
                     {} cm^3, kept {kept}",
                    l.name, l.min_volume_cm3
                ));
            }
            let (_, per_fraction, eqd2) = sib_doses(l.dose_gy, &[], n, ab)?[0];
            report.sib_levels.push(SibLevel {
                name: l.name.clone(),
                dose_gy: l.dose_gy,
                dose_per_fraction_gy: per_fraction,
                eqd2_gy: eqd2,
                alpha_beta_gy: ab,
                fractions: n,
                volume_cm3: count as f64 * voxel_cm3,
                components_kept: kept,
                components_removed: removed,
            });
            report.structures.push(s);
        }
        let label = self.label();
        let provenance = dosepaint_core::Provenance {
            description: label,
            spec: serde_json::to_string(&MappingSpec::Contours(self.spec.clone()))?,
        };
        Ok(DoseMap {
            target_gy: Volume::from_vec(grid.clone(), dose)?,
            bounds: None,
            provenance,
            report,
        })
    }

    fn describe(&self) -> String {
        self.label()
    }

    fn spec(&self) -> Option<MappingSpec> {
        Some(MappingSpec::Contours(self.spec.clone()))
    }
}
