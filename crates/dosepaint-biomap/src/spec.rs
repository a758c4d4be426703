//! The serialisable description of every built-in mapping.

use dosepaint_core::Prescription;
use serde::{Deserialize, Serialize};

use crate::combine::{
    Bounded, BoundedSpec, MaxOf, MaxSpec, PatientAdjusted, PatientSpec, Redistribute,
    RedistributeSpec, Uniform, UniformSpec, WeightedSpec, WeightedSum,
};
use crate::contours::{ContourMapping, ContourSpec};
use crate::error::Result;
use crate::inputs::MappingInputs;
use crate::mapping::{DoseMap, DoseMapping, MappingOutput};
use crate::numbers::{
    CurveMapping, LinearSpec, PiecewiseSpec, RiskMapSpec, RiskMapping, SigmoidSpec,
};
use crate::radiobiological::{IsoEffectMapping, IsoEffectSpec, IsoKind};

/// Every built-in mapping as serde data (JSON/TOML), tagged by `kind`.
///
/// [`MappingSpec::build`] validates it and returns the mapping; the spec also
/// implements [`DoseMapping`] itself (building on each call). The spec of the
/// mapping that produced a prescription is stored, as JSON, in the
/// prescription's provenance, so it can be reviewed and reproduced exactly.
///
/// The combination of a linear FMISO map (tumour-to-blood ratio 1.2 -> 70 Gy,
/// 2.0 -> 84 Gy in the GTV, 70 Gy in the rest of the PTV) with an FDG contour
/// boost (50 % of SUVmax -> 77 Gy) is one spec:
///
/// ```
/// use dosepaint_biomap::{DoseMapping, MappingInputs, MappingSpec};
/// let spec = MappingSpec::from_json(r#"{
///   "kind": "max",
///   "mappings": [
///     { "kind": "linear",
///       "image": { "image": "fmiso",
///                  "normalization": { "reference_ratio": { "region": "blood" } } },
///       "i_low": 1.2, "i_high": 2.0, "d_low_gy": 70, "d_high_gy": 84,
///       "base_dose_gy": 70 },
///     { "kind": "contours", "base_dose_gy": 70,
///       "levels": [ { "name": "BTV_FDG50", "image": { "image": "fdg" },
///                     "rule": { "fraction_of_max": 0.5 }, "dose_gy": 77,
///                     "min_volume_cm3": 0.5, "margin_mm": 2 } ] }
///   ]
/// }"#)?;
/// let mapping = spec.build()?;
/// assert_eq!(mapping.spec(), Some(spec.clone()));
/// // Round trip through JSON.
/// assert_eq!(MappingSpec::from_json(&spec.to_json()?)?, spec);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MappingSpec {
    /// A uniform dose.
    Uniform(UniformSpec),
    /// Dose painting by contours (SIB levels).
    Contours(ContourSpec),
    /// Linear dose painting by numbers (Bentzen 2005).
    Linear(LinearSpec),
    /// Sigmoid dose painting by numbers.
    Sigmoid(SigmoidSpec),
    /// Piecewise-linear table.
    Piecewise(PiecewiseSpec),
    /// Several images combined into one risk map.
    RiskMap(RiskMapSpec),
    /// Iso-effect dose for hypoxia (needs `oxygen`).
    Hypoxia(IsoEffectSpec),
    /// Iso-effect dose for cellularity (needs `density`).
    Cellularity(IsoEffectSpec),
    /// Iso-effect dose for proliferation (needs `proliferation`).
    Proliferation(IsoEffectSpec),
    /// Iso-effect dose with any combination of components.
    IsoEffect(IsoEffectSpec),
    /// The voxel-wise maximum of several mappings.
    Max(MaxSpec),
    /// A weighted mean of several mappings.
    Weighted(WeightedSpec),
    /// A mapping rescaled to the mean (or integral) dose of a uniform plan.
    Redistribute(RedistributeSpec),
    /// A mapping adjusted to the patient's radiosensitivity.
    PatientRadiosensitivity(PatientSpec),
    /// A mapping with relative per-voxel bounds.
    Bounded(BoundedSpec),
}

impl MappingSpec {
    /// Validates the spec and builds the mapping.
    ///
    /// # Errors
    /// The first invalid parameter, named.
    pub fn build(&self) -> Result<Box<dyn DoseMapping>> {
        Ok(match self {
            MappingSpec::Uniform(s) => Box::new(Uniform::new(s)?),
            MappingSpec::Contours(s) => Box::new(ContourMapping::new(s)?),
            MappingSpec::Linear(s) => Box::new(CurveMapping::new(self, &s.image, s.checked()?)),
            MappingSpec::Sigmoid(s) => Box::new(CurveMapping::new(self, &s.image, s.checked()?)),
            MappingSpec::Piecewise(s) => Box::new(CurveMapping::new(self, &s.image, s.checked()?)),
            MappingSpec::RiskMap(s) => Box::new(RiskMapping::new(s)?),
            MappingSpec::Hypoxia(s) => Box::new(IsoEffectMapping::new(s, IsoKind::Hypoxia)?),
            MappingSpec::Cellularity(s) => {
                Box::new(IsoEffectMapping::new(s, IsoKind::Cellularity)?)
            }
            MappingSpec::Proliferation(s) => {
                Box::new(IsoEffectMapping::new(s, IsoKind::Proliferation)?)
            }
            MappingSpec::IsoEffect(s) => Box::new(IsoEffectMapping::new(s, IsoKind::General)?),
            MappingSpec::Max(s) => Box::new(MaxOf::new(
                s.mappings
                    .iter()
                    .map(MappingSpec::build)
                    .collect::<Result<_>>()?,
            )?),
            MappingSpec::Weighted(s) => Box::new(WeightedSum::new(
                s.components
                    .iter()
                    .map(|c| Ok((c.weight, c.mapping.build()?)))
                    .collect::<Result<_>>()?,
            )?),
            MappingSpec::Redistribute(s) => {
                Box::new(Redistribute::new(s.mapping.build()?, s.clone())?)
            }
            MappingSpec::PatientRadiosensitivity(s) => Box::new(PatientAdjusted::new(
                s.mapping.build()?,
                s.reference_lq,
                s.patient,
            )?),
            MappingSpec::Bounded(s) => {
                Box::new(Bounded::new(s.mapping.build()?, s.lower, s.upper)?)
            }
        })
    }

    /// Reads a spec from JSON.
    ///
    /// # Errors
    /// [`Error::Spec`](crate::Error::Spec) with serde's message (line, column,
    /// unknown field or variant).
    pub fn from_json(json: &str) -> Result<Self> {
        Ok(serde_json::from_str(json)?)
    }

    /// Writes the spec as pretty JSON.
    ///
    /// # Errors
    /// Only if serialisation fails (it does not for valid specs).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The spec recorded in a prescription's provenance, if it is a built-in
    /// spec (custom mappings record their own JSON).
    ///
    /// # Errors
    /// [`Error::Spec`](crate::Error::Spec) if the provenance does not hold one.
    pub fn from_provenance(prescription: &Prescription) -> Result<Self> {
        Self::from_json(&prescription.provenance().spec)
    }
}

impl DoseMapping for MappingSpec {
    fn map(&self, inputs: &MappingInputs) -> Result<Prescription> {
        self.build()?.map(inputs)
    }

    fn map_with_report(&self, inputs: &MappingInputs) -> Result<MappingOutput> {
        self.build()?.map_with_report(inputs)
    }

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        self.build()?.paint(inputs)
    }

    fn describe(&self) -> String {
        match self.build() {
            Ok(m) => m.describe(),
            Err(e) => format!("invalid mapping spec ({e})"),
        }
    }

    fn spec(&self) -> Option<MappingSpec> {
        Some(self.clone())
    }
}
