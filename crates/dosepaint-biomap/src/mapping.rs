//! The `DoseMapping` trait, its output and report, the painting loop shared by
//! the built-in mappings, and the per-voxel adapter.

use std::sync::Arc;

use dosepaint_core::{Prescription, Provenance, Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::contours::SibLevel;
use crate::error::{Error, Result};
use crate::image::{ImageSource, Prepared, prepare};
use crate::inputs::MappingInputs;
use crate::spec::MappingSpec;

/// A dose-painting strategy: whole volumes in (co-registered images, target
/// structures, number of fractions), a [`Prescription`] out.
///
/// Working on whole volumes lets mappings that need the whole picture fit the
/// same trait: redistribution to a mean dose, the maximum of several maps,
/// contours with connected components and margins, smoothing. For a simple
/// per-voxel function use the adapter [`VoxelFn`].
///
/// Implement [`DoseMapping::map`] (and, to say what was adjusted,
/// [`DoseMapping::map_with_report`]); built-in mappings also return their
/// serialisable [`MappingSpec`] from [`DoseMapping::spec`]. The trait is
/// object safe: a pipeline holds `Box<dyn DoseMapping>`.
///
/// ```
/// use dosepaint_biomap::{DoseMapping, MappingInputs, Result};
/// use dosepaint_core::{Prescription, Provenance, Volume};
///
/// /// 70 Gy plus 2 Gy per unit of FDG SUV above 5, in the target only.
/// #[derive(Debug)]
/// struct SuvBoost;
///
/// impl DoseMapping for SuvBoost {
///     fn map(&self, inputs: &MappingInputs) -> Result<Prescription> {
///         let fdg = inputs.image("fdg")?;
///         let target = inputs.target().mask();
///         let dose = fdg.zip_map(target, |&suv, &inside| {
///             if inside { 70.0 + 2.0 * (suv - 5.0).max(0.0) } else { 0.0 }
///         })?;
///         let provenance = Provenance { description: "SUV boost".into(), spec: "{}".into() };
///         Ok(Prescription::new(dose, inputs.fractions(), provenance)?)
///     }
/// }
/// # use dosepaint_core::{Grid, Structure, StructureRole};
/// # let grid = Grid::new([4, 1, 1], [3.0; 3], [0.0; 3])?;
/// # let gtv = Structure::new("GTV", StructureRole::Target, Volume::from_vec(grid.clone(), vec![true; 4])?)?;
/// # let fdg = Volume::from_vec(grid, vec![4.0f32, 6.0, 8.0, 10.0])?;
/// # let inputs = MappingInputs::new(gtv, 35)?.with_image("fdg", fdg)?;
/// let rx = SuvBoost.map(&inputs)?;
/// assert_eq!(rx.target_gy().as_slice(), &[70.0, 72.0, 76.0, 80.0]);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
pub trait DoseMapping: Send + Sync + std::fmt::Debug {
    /// The prescription for these inputs.
    ///
    /// # Errors
    /// Whatever the mapping finds wrong with its inputs.
    fn map(&self, inputs: &MappingInputs) -> Result<Prescription>;

    /// The prescription and a report of what the mapping adjusted (voxels
    /// raised to a floor or lowered to a cap, densities floored...). The
    /// default reports nothing.
    ///
    /// # Errors
    /// As [`DoseMapping::map`].
    fn map_with_report(&self, inputs: &MappingInputs) -> Result<MappingOutput> {
        Ok(MappingOutput::new(self.map(inputs)?))
    }

    /// The painted map before the whole-grid validation that makes it a
    /// [`Prescription`]: combinations call this on their parts so that the
    /// result is validated once. Built-in mappings paint directly (their
    /// painting loops already refuse NaN or negative doses voxel by voxel);
    /// the default goes through [`DoseMapping::map_with_report`].
    ///
    /// # Errors
    /// As [`DoseMapping::map`].
    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let out = self.map_with_report(inputs)?;
        let rx = &out.prescription;
        if rx.fractions() != inputs.fractions() {
            return Err(Error::invalid(
                format!("mapping \"{}\"", self.describe()),
                format!(
                    "returned a prescription in {} fractions for inputs of {} fractions",
                    rx.fractions(),
                    inputs.fractions()
                ),
            ));
        }
        inputs.grid().ensure_same(
            rx.grid(),
            &format!(
                "prescription of mapping \"{}\" vs the planning grid",
                self.describe()
            ),
        )?;
        Ok(DoseMap::from_output(out))
    }

    /// A short description for people (used in provenance).
    fn describe(&self) -> String {
        std::any::type_name::<Self>().to_string()
    }

    /// The built-in spec that rebuilds this mapping, if it is built in (or made
    /// only of built-in parts); `None` for custom mappings.
    fn spec(&self) -> Option<MappingSpec> {
        None
    }
}

/// `map` and `map_with_report` of a mapping that implements `paint`.
macro_rules! map_via_paint {
    () => {
        fn map(
            &self,
            inputs: &$crate::MappingInputs,
        ) -> $crate::Result<dosepaint_core::Prescription> {
            Ok(self.map_with_report(inputs)?.prescription)
        }

        fn map_with_report(
            &self,
            inputs: &$crate::MappingInputs,
        ) -> $crate::Result<$crate::MappingOutput> {
            self.paint(inputs)?.into_output(inputs.fractions())
        }
    };
}
pub(crate) use map_via_paint;

/// A `DoseMapping` for a smart pointer to one: every method, the defaulted
/// ones included, goes to the pointee, so a boxed or shared mapping paints
/// exactly as the mapping itself.
macro_rules! forward_dose_mapping {
    ($($pointer:ident),+) => {$(
        impl<T: DoseMapping + ?Sized> DoseMapping for $pointer<T> {
            fn map(&self, inputs: &MappingInputs) -> Result<Prescription> {
                (**self).map(inputs)
            }
            fn map_with_report(&self, inputs: &MappingInputs) -> Result<MappingOutput> {
                (**self).map_with_report(inputs)
            }
            fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
                (**self).paint(inputs)
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
            fn spec(&self) -> Option<MappingSpec> {
                (**self).spec()
            }
        }
    )+};
}

forward_dose_mapping!(Box, Arc);

/// A painted dose map (total course Gy) with optional per-voxel bounds, its
/// provenance and report, not yet validated into a [`Prescription`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseMap {
    /// Target dose per voxel (Gy, total course; 0 where not prescribed).
    pub target_gy: Volume<f32>,
    /// Per-voxel minimum and maximum acceptable dose, if any.
    pub bounds: Option<(Volume<f32>, Volume<f32>)>,
    /// Description and generating spec.
    pub provenance: Provenance,
    /// What was adjusted on the way.
    pub report: MappingReport,
}

impl DoseMap {
    /// Validates the map into a prescription of `fractions` fractions.
    ///
    /// # Errors
    /// A NaN, infinite or negative dose, bounds that do not bracket the
    /// target, zero fractions, or no prescribed voxel.
    pub fn into_output(self, fractions: u32) -> Result<MappingOutput> {
        let mut prescription = Prescription::new(self.target_gy, fractions, self.provenance)?;
        if let Some((lo, hi)) = self.bounds {
            prescription = prescription.with_bounds(lo, hi)?;
        }
        Ok(MappingOutput {
            prescription,
            report: self.report,
        })
    }

    /// The map of a validated output (copies its volumes).
    pub fn from_output(output: MappingOutput) -> Self {
        let rx = output.prescription;
        Self {
            target_gy: rx.target_gy().clone(),
            bounds: rx.min_gy().cloned().zip(rx.max_gy().cloned()),
            provenance: rx.provenance().clone(),
            report: output.report,
        }
    }
}

/// A prescription and the report of how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingOutput {
    /// The prescription (its provenance holds the spec that produced it).
    pub prescription: Prescription,
    /// What the mapping adjusted or produced on the way.
    pub report: MappingReport,
}

impl MappingOutput {
    /// An output with an empty report.
    pub fn new(prescription: Prescription) -> Self {
        Self {
            prescription,
            report: MappingReport::default(),
        }
    }
}

/// What a mapping adjusted or produced besides the dose map.
///
/// Nothing is clamped silently: every floor, cap or model saturation that
/// touched a voxel is listed here with its count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappingReport {
    /// Voxel counts of every adjustment.
    pub adjustments: Vec<Adjustment>,
    /// Other remarks (empty levels, dropped bounds, scale factors...).
    pub notes: Vec<String>,
    /// Structures made on the way (the boost subvolumes of a contour mapping),
    /// ready to be written as RTSTRUCT by the I/O crate.
    pub structures: Vec<Structure>,
    /// The SIB dose levels of contour mappings, with per-fraction doses and EQD2.
    pub sib_levels: Vec<SibLevel>,
}

impl MappingReport {
    /// Number of voxels touched by adjustments of `kind` (over all mappings).
    pub fn count(&self, kind: AdjustmentKind) -> usize {
        self.adjustments
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.voxels)
            .sum()
    }

    /// Appends another report (from a child mapping).
    pub fn merge(&mut self, other: MappingReport) {
        self.adjustments.extend(other.adjustments);
        self.notes.extend(other.notes);
        self.structures.extend(other.structures);
        self.sib_levels.extend(other.sib_levels);
    }

    pub(crate) fn adjust(
        &mut self,
        mapping: &str,
        kind: AdjustmentKind,
        value: f64,
        voxels: usize,
    ) {
        if voxels > 0 {
            self.adjustments.push(Adjustment {
                mapping: mapping.to_string(),
                kind,
                value,
                voxels,
            });
        }
    }
}

/// One kind of adjustment and how many voxels it touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The mapping that made it.
    pub mapping: String,
    /// What was done.
    pub kind: AdjustmentKind,
    /// The value involved (the floor or cap in Gy, the density floor...).
    pub value: f64,
    /// How many voxels.
    pub voxels: usize,
}

/// What an [`Adjustment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdjustmentKind {
    /// The painted dose was raised to the dose floor (Gy).
    RaisedToFloor,
    /// The painted dose was lowered to the dose cap (Gy).
    LoweredToCap,
    /// The clonogen density was raised to its floor (ADC at or above free water).
    DensityFloor,
    /// The clonogen density was lowered to `rho_max` (ADC below `ADC_min`).
    DensityCeiling,
    /// The uptake was at or above the anoxic end of the pO2 model (pO2 = 0).
    Po2Anoxic,
    /// The uptake was at or below the oxic end of the pO2 model (pO2 capped).
    Po2Oxic,
    /// The iso-effect equation asked for no dose at all (log cell kill <= 0).
    NoDoseNeeded,
    /// A proliferation rate from a non-positive uptake was set to zero.
    NoProliferation,
    /// Voxels below the redistribution floor were left unchanged.
    BelowRedistributionFloor,
}

/// Dose floor and cap applied to the painted voxels (Gy, total course).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Limits {
    pub floor: Option<f64>,
    pub cap: Option<f64>,
}

impl Limits {
    pub(crate) fn new(floor: Option<f64>, cap: Option<f64>, what: &str) -> Result<Self> {
        if let Some(f) = floor {
            crate::error::dose(&format!("{what} floor_gy"), f)?;
        }
        if let Some(c) = cap {
            crate::error::dose(&format!("{what} cap_gy"), c)?;
        }
        if let (Some(f), Some(c)) = (floor, cap)
            && f > c
        {
            return Err(Error::invalid(
                format!("{what} dose limits"),
                format!("floor {f} Gy is above cap {c} Gy"),
            ));
        }
        Ok(Self { floor, cap })
    }
}

/// The options most built-in specs share, validated once: the dose to the
/// base region outside the target, and the floor and cap inside it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Painting {
    pub base: Option<f64>,
    pub limits: Limits,
}

impl Painting {
    /// Checks the base dose, floor and cap of the mapping `what` (each a
    /// finite dose >= 0, the floor not above the cap).
    pub(crate) fn new(
        base: Option<f64>,
        floor: Option<f64>,
        cap: Option<f64>,
        what: &str,
    ) -> Result<Self> {
        check_base(base, what)?;
        Ok(Self {
            base,
            limits: Limits::new(floor, cap, what)?,
        })
    }

    /// [`paint_voxels`] with these options.
    pub(crate) fn paint<F>(&self, inputs: &MappingInputs, what: &str, f: F) -> Result<Painted>
    where
        F: Fn(usize, &mut Tally) -> Result<f64> + Sync,
    {
        paint_voxels(inputs, self.base, self.limits, what, f)
    }

    /// [`finish`] with these options' floor and cap.
    pub(crate) fn finish(
        &self,
        inputs: &MappingInputs,
        painted: Painted,
        description: String,
        spec_json: String,
        report: MappingReport,
    ) -> Result<DoseMap> {
        finish(inputs, painted, self.limits, description, spec_json, report)
    }
}

/// Per-slice counters a painting closure may increment (model saturations
/// and the like), summed over the grid afterwards.
pub(crate) type Tally = [usize; 8];

/// The painted map before it becomes a prescription.
pub(crate) struct Painted {
    pub dose: Vec<f32>,
    pub floored: usize,
    pub capped: usize,
    pub tally: Tally,
}

/// The loop every built-in painting mapping runs: `f(n, tally)` inside the
/// target (then floor and cap), the base dose in the rest of the base region,
/// 0 elsewhere. Parallel over slices with per-slice counters; the first error
/// in memory order wins.
pub(crate) fn paint_voxels<F>(
    inputs: &MappingInputs,
    base_dose: Option<f64>,
    limits: Limits,
    what: &str,
    f: F,
) -> Result<Painted>
where
    F: Fn(usize, &mut Tally) -> Result<f64> + Sync,
{
    let grid = inputs.grid();
    let [nx, ny, _] = grid.dims();
    let plane = nx * ny;
    let target = inputs.target_mask();
    let base = inputs.base_mask();
    let base_value = base_dose.unwrap_or(0.0) as f32;
    let lo = limits.floor.unwrap_or(f64::NEG_INFINITY);
    let hi = limits.cap.unwrap_or(f64::INFINITY);
    // Only the box of the target and base region is visited: the rest of the
    // (lazily zeroed) output is never touched.
    let w = inputs.prescribed_window();
    let mut dose = vec![0.0f32; grid.n_voxels()];
    let parts: Vec<Result<(usize, usize, Tally)>> = w
        .par_slices_mut(&mut dose, plane)
        .map(|(k, out)| {
            let mut floored = 0;
            let mut capped = 0;
            let mut tally = Tally::default();
            for j in w.lo[1]..=w.hi[1] {
                for i in w.lo[0]..=w.hi[0] {
                    let local = j * nx + i;
                    let n = k * plane + local;
                    let o = &mut out[local];
                    if target[n] {
                        let d = f(n, &mut tally)?;
                        if !(d.is_finite() && d >= 0.0) {
                            return Err(Error::voxel(
                                format!("{what} dose"),
                                grid.voxel_index(n),
                                format!("{d} Gy is not a finite non-negative dose"),
                            ));
                        }
                        let v = if d < lo {
                            floored += 1;
                            lo
                        } else if d > hi {
                            capped += 1;
                            hi
                        } else {
                            d
                        };
                        *o = v as f32;
                    } else if base_dose.is_some() && base.is_some_and(|b| b[n]) {
                        *o = base_value;
                    }
                }
            }
            Ok((floored, capped, tally))
        })
        .collect();
    let mut floored = 0;
    let mut capped = 0;
    let mut tally = Tally::default();
    for p in parts {
        let (f, c, t) = p?;
        floored += f;
        capped += c;
        for (a, b) in tally.iter_mut().zip(t) {
            *a += b;
        }
    }
    Ok(Painted {
        dose,
        floored,
        capped,
        tally,
    })
}

/// Turns a painted map into a dose map with provenance and the floor and cap
/// counts in its report.
pub(crate) fn finish(
    inputs: &MappingInputs,
    painted: Painted,
    limits: Limits,
    description: String,
    spec_json: String,
    mut report: MappingReport,
) -> Result<DoseMap> {
    if let Some(f) = limits.floor {
        report.adjust(
            &description,
            AdjustmentKind::RaisedToFloor,
            f,
            painted.floored,
        );
    }
    if let Some(c) = limits.cap {
        report.adjust(
            &description,
            AdjustmentKind::LoweredToCap,
            c,
            painted.capped,
        );
    }
    Ok(DoseMap {
        target_gy: Volume::from_vec(inputs.grid().clone(), painted.dose)?,
        bounds: None,
        provenance: Provenance {
            description,
            spec: spec_json,
        },
        report,
    })
}

pub(crate) fn check_base(base_dose: Option<f64>, what: &str) -> Result<()> {
    if let Some(b) = base_dose {
        crate::error::dose(&format!("{what} base_dose_gy"), b)?;
    }
    Ok(())
}

/// What a [`VoxelFn`] sees at one target voxel.
#[derive(Debug, Clone, Copy)]
pub struct Voxel<'a> {
    /// The prepared values of the adapter's images, in the order given.
    pub values: &'a [f64],
    /// The voxel index `(i, j, k)`.
    pub index: [usize; 3],
    /// The number of fractions of the inputs.
    pub fractions: u32,
}

/// Adapter that turns a per-voxel function into a [`DoseMapping`].
///
/// The function receives the prepared values of the named images at a target
/// voxel and returns the total course dose in Gy there; the adapter handles
/// preparation, the base region, validation (a NaN or negative result is an
/// error naming the voxel), the prescription and its provenance.
///
/// ```
/// use dosepaint_biomap::{DoseMapping, ImageSource, MappingInputs, VoxelFn};
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// let grid = Grid::new([3, 1, 1], [3.0; 3], [0.0; 3])?;
/// let gtv = Structure::new("GTV", StructureRole::Target,
///     Volume::from_vec(grid.clone(), vec![true, true, false])?)?;
/// let ptv = Structure::new("PTV", StructureRole::Target, Volume::filled(grid.clone(), true))?;
/// let flt = Volume::from_vec(grid, vec![1.0f32, 3.0, 9.0])?;
/// let inputs = MappingInputs::new(gtv, 30)?.with_base_region(ptv)?.with_image("flt", flt)?;
///
/// // 66 Gy plus 1 Gy per unit of FLT SUV, 66 Gy in the rest of the PTV.
/// let m = VoxelFn::new("flt boost", [ImageSource::new("flt")], |v| 66.0 + v.values[0])
///     .with_base_dose(66.0)?;
/// let rx = m.map(&inputs)?;
/// assert_eq!(rx.target_gy().as_slice(), &[67.0, 69.0, 66.0]);
/// assert_eq!(rx.fractions(), 30);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
pub struct VoxelFn<F> {
    name: String,
    sources: Vec<ImageSource>,
    base_dose_gy: Option<f64>,
    spec_json: Option<String>,
    f: F,
}

impl<F> std::fmt::Debug for VoxelFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoxelFn")
            .field("name", &self.name)
            .field("sources", &self.sources)
            .field("base_dose_gy", &self.base_dose_gy)
            .finish_non_exhaustive()
    }
}

impl<F> VoxelFn<F>
where
    F: Fn(&Voxel<'_>) -> f64 + Send + Sync,
{
    /// A mapping named `name` reading `sources` (in that order) at every target voxel.
    pub fn new(
        name: impl Into<String>,
        sources: impl IntoIterator<Item = ImageSource>,
        f: F,
    ) -> Self {
        Self {
            name: name.into(),
            sources: sources.into_iter().collect(),
            base_dose_gy: None,
            spec_json: None,
            f,
        }
    }

    /// Gives `dose_gy` to the base region outside the target.
    ///
    /// # Errors
    /// A negative or non-finite dose.
    pub fn with_base_dose(mut self, dose_gy: f64) -> Result<Self> {
        crate::error::dose("base dose", dose_gy)?;
        self.base_dose_gy = Some(dose_gy);
        Ok(self)
    }

    /// Records `spec_json` (your own serialised parameters) in the provenance
    /// instead of the default `{"kind": "custom", ...}` summary.
    #[must_use]
    pub fn with_provenance_spec(mut self, spec_json: impl Into<String>) -> Self {
        self.spec_json = Some(spec_json.into());
        self
    }
}

impl<F> DoseMapping for VoxelFn<F>
where
    F: Fn(&Voxel<'_>) -> f64 + Send + Sync,
{
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let prepared: Vec<Prepared<'_>> = self
            .sources
            .iter()
            .map(|s| prepare(s, inputs))
            .collect::<Result<_>>()?;
        let grid = inputs.grid();
        let fractions = inputs.fractions();
        let what = format!("custom mapping \"{}\"", self.name);
        let painted = paint_voxels(
            inputs,
            self.base_dose_gy,
            Limits::default(),
            &what,
            |n, _| {
                let mut buf = [0.0f64; 8];
                let mut heap;
                let values: &mut [f64] = if prepared.len() <= buf.len() {
                    &mut buf[..prepared.len()]
                } else {
                    heap = vec![0.0; prepared.len()];
                    &mut heap
                };
                for (v, p) in values.iter_mut().zip(&prepared) {
                    *v = p.at(n);
                }
                Ok((self.f)(&Voxel {
                    values,
                    index: grid.voxel_index(n),
                    fractions,
                }))
            },
        )?;
        let spec = match &self.spec_json {
            Some(s) => s.clone(),
            None => serde_json::json!({
                "kind": "custom",
                "name": self.name,
                "images": self.sources,
                "base_dose_gy": self.base_dose_gy,
            })
            .to_string(),
        };
        finish(
            inputs,
            painted,
            Limits::default(),
            self.name.clone(),
            spec,
            MappingReport::default(),
        )
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
