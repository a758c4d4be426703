//! Radiobiological dose painting: the dose that gives every voxel the same
//! expected number of surviving clonogens per unit volume as a reference
//! voxel, with hypoxia (tracer uptake -> pO2 -> OER), cellularity (ADC ->
//! clonogen density) and proliferation (FLT uptake -> repopulation).
//!
//! All LQ and OER formulas come from `dosepaint-radiobio`.

use dosepaint_radiobio::{LqParams, OerModel, Repopulation, dose_for_log_cell_kill};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, dose, finite, non_negative, positive};
use crate::image::{ImageSource, Level, Prepared, prepare, resolve_levels};
use crate::inputs::MappingInputs;
use crate::mapping::{
    AdjustmentKind, DoseMap, DoseMapping, MappingReport, Painting, map_via_paint,
};
use crate::numbers::{check_table, piecewise_dose};
use crate::spec::MappingSpec;

/// A model from tracer uptake (e.g. FMISO tumour-to-blood ratio) to the
/// partial pressure of oxygen in mmHg.
///
/// In a spec: `{"model": "binding", "uptake_oxic": 1.0, "uptake_anoxic": 3.0,
/// "k_mmhg": 1.4, "max_po2_mmhg": 60}`, `{"model": "direct"}`, or
/// `{"model": "table", "points": [[1.0, 60], [1.5, 10], [3.0, 0]]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Po2Model {
    /// The image already holds pO2 in mmHg (e.g. a calibrated map); values
    /// must be >= 0.
    Direct,
    /// Michaelis-Menten binding of a nitroimidazole tracer: retention falls
    /// with oxygen as `K / (K + p)`, so
    /// `U(p) = U_oxic + (U_anoxic - U_oxic) K / (K + p)` and, inverted,
    /// `p = K (U_anoxic - U) / (U - U_oxic)`, capped at `max_po2_mmhg`.
    /// Uptake at or above `U_anoxic` is anoxic (p = 0); at or below `U_oxic`,
    /// fully oxic (p = `max_po2_mmhg`). FMISO-based prescription studies
    /// (e.g. Toma-Dasu et al. 2012, Acta Oncol 51:222) convert uptake to pO2
    /// with a saturating curve of this kind; Warren & Partridge 2016 (Phys Med
    /// Biol 61:8596) fitted half-maximal FMISO binding at K = 1.4 mmHg (95 % CI
    /// 0.3-2.6) and showed that necrosis lowers uptake in the most anoxic
    /// tissue, so the model holds for viable tissue only.
    Binding {
        /// Uptake of well-oxygenated tissue (e.g. TBR 1.0).
        uptake_oxic: f64,
        /// Uptake of anoxic tissue (the maximum the model allows).
        uptake_anoxic: f64,
        /// pO2 of half-maximal binding (mmHg).
        k_mmhg: f64,
        /// pO2 given to fully oxic voxels (mmHg), e.g. 60.
        max_po2_mmhg: f64,
    },
    /// A calibration table of `[uptake, pO2_mmHg]` points: uptake strictly
    /// increasing, pO2 non-increasing and >= 0; linear in between, constant
    /// beyond the ends.
    Table {
        /// The points.
        points: Vec<[f64; 2]>,
    },
}

/// Where a pO2 value came from the model's saturated ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Po2Saturation {
    /// Inside the model's range.
    None,
    /// At the anoxic end (uptake at or above it).
    Anoxic,
    /// At the oxic end (uptake at or below it, or pO2 capped).
    Oxic,
}

impl Po2Model {
    fn check(&self) -> Result<()> {
        match self {
            Po2Model::Direct => Ok(()),
            Po2Model::Binding {
                uptake_oxic,
                uptake_anoxic,
                k_mmhg,
                max_po2_mmhg,
            } => {
                finite("pO2 model uptake_oxic", *uptake_oxic)?;
                finite("pO2 model uptake_anoxic", *uptake_anoxic)?;
                if uptake_anoxic <= uptake_oxic {
                    return Err(Error::invalid(
                        "pO2 binding model",
                        format!(
                            "uptake_anoxic ({uptake_anoxic}) must exceed uptake_oxic ({uptake_oxic})"
                        ),
                    ));
                }
                positive("pO2 model k_mmhg", *k_mmhg)?;
                positive("pO2 model max_po2_mmhg", *max_po2_mmhg)?;
                Ok(())
            }
            Po2Model::Table { points } => {
                check_table("pO2 table", "uptake", "pO2", points, non_negative)?;
                if let Some(k) = (1..points.len()).find(|&k| points[k][1] > points[k - 1][1]) {
                    return Err(Error::invalid(
                        "pO2 table",
                        format!(
                            "pO2 must not increase with uptake: point {k} {:?} follows {:?}",
                            points[k],
                            points[k - 1]
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// pO2 (mmHg) for an uptake value, and whether it saturated.
    ///
    /// ```
    /// use dosepaint_biomap::{Po2Model, Po2Saturation};
    /// let m = Po2Model::Binding { uptake_oxic: 1.0, uptake_anoxic: 3.0, k_mmhg: 1.4,
    ///                             max_po2_mmhg: 60.0 };
    /// // Half-way between oxic and anoxic uptake: p = K.
    /// let (p, s) = m.po2(2.0).unwrap();
    /// assert!((p - 1.4).abs() < 1e-12 && s == Po2Saturation::None);
    /// assert_eq!(m.po2(3.5).unwrap(), (0.0, Po2Saturation::Anoxic));
    /// ```
    ///
    /// # Errors
    /// A non-finite uptake, or a negative value for [`Po2Model::Direct`].
    pub fn po2(&self, uptake: f64) -> Result<(f64, Po2Saturation)> {
        if !uptake.is_finite() {
            return Err(Error::invalid(
                "tracer uptake",
                format!("{uptake} is not finite"),
            ));
        }
        Ok(match self {
            Po2Model::Direct => {
                if uptake < 0.0 {
                    return Err(Error::invalid("pO2", format!("{uptake} mmHg is negative")));
                }
                (uptake, Po2Saturation::None)
            }
            Po2Model::Binding {
                uptake_oxic,
                uptake_anoxic,
                k_mmhg,
                max_po2_mmhg,
            } => {
                if uptake >= *uptake_anoxic {
                    (0.0, Po2Saturation::Anoxic)
                } else if uptake <= *uptake_oxic {
                    (*max_po2_mmhg, Po2Saturation::Oxic)
                } else {
                    let p = k_mmhg * (uptake_anoxic - uptake) / (uptake - uptake_oxic);
                    if p >= *max_po2_mmhg {
                        (*max_po2_mmhg, Po2Saturation::Oxic)
                    } else {
                        (p, Po2Saturation::None)
                    }
                }
            }
            Po2Model::Table { points } => {
                let first = points[0];
                let last = points[points.len() - 1];
                if uptake < first[0] {
                    (first[1], Po2Saturation::Oxic)
                } else if uptake > last[0] {
                    (last[1], Po2Saturation::Anoxic)
                } else {
                    (piecewise_dose(uptake, points), Po2Saturation::None)
                }
            }
        })
    }
}

/// A hypoxic radiosensitiser (e.g. nimorazole) modelled as a reduction of the
/// maximum OER: with sensitiser enhancement ratio `SER` at anoxia, the OER
/// curves keep their `K` and their maxima become `m / SER` (never below 1), so
/// `OER_drug(0) = m / SER` and `OER_drug -> 1` in oxic tissue, where the drug
/// has no effect. The SER is the user's model input (nimorazole's benefit was
/// shown clinically by the DAHANCA 5 trial, Overgaard et al. 1998, Radiother
/// Oncol 46:135; no SER value is built in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypoxicModifier {
    /// The drug (for provenance).
    pub name: String,
    /// Sensitiser enhancement ratio at anoxia (>= 1, at most the smaller maximum OER).
    pub sensitizer_enhancement_ratio: f64,
}

impl HypoxicModifier {
    /// The effective OER model under the drug.
    ///
    /// ```
    /// use dosepaint_biomap::HypoxicModifier;
    /// use dosepaint_radiobio::OerModel;
    /// let drug = HypoxicModifier { name: "nimorazole".into(), sensitizer_enhancement_ratio: 1.25 };
    /// let oer = drug.apply(&OerModel::carlson_2006())?;
    /// assert!((oer.oer_alpha(0.0)? - 2.0).abs() < 1e-12); // 2.5 / 1.25
    /// # Ok::<(), dosepaint_biomap::Error>(())
    /// ```
    ///
    /// # Errors
    /// An SER below 1 or above the smaller maximum OER.
    pub fn apply(&self, oer: &OerModel) -> Result<OerModel> {
        let ser = self.sensitizer_enhancement_ratio;
        let m_min = oer.m_alpha().min(oer.m_beta());
        if !(ser.is_finite() && ser >= 1.0 && ser <= m_min) {
            return Err(Error::invalid(
                format!("sensitizer_enhancement_ratio of \"{}\"", self.name),
                format!("{ser} must lie in [1, {m_min}] (the smaller maximum OER)"),
            ));
        }
        Ok(OerModel::new(
            oer.m_alpha() / ser,
            oer.m_beta() / ser,
            oer.k_mmhg(),
        )?)
    }
}

/// The hypoxia component of an iso-effect mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OxygenSpec {
    /// The hypoxia image (e.g. FMISO as tumour-to-blood ratio).
    pub image: ImageSource,
    /// Uptake -> pO2.
    pub po2: Po2Model,
    /// pO2 -> OER for alpha and beta (default: Carlson, Stewart & Semenenko 2006).
    #[serde(default)]
    pub oer: OerModel,
    /// An optional hypoxic radiosensitiser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifier: Option<HypoxicModifier>,
}

/// Free-water diffusivity at 37 C (mm^2/s), `shared/reference/dose_painting.md`.
pub const ADC_FREE_WATER_MM2_PER_S: f64 = 3.0e-3;

fn adc_water() -> f64 {
    ADC_FREE_WATER_MM2_PER_S
}

/// Clonogen density from ADC, linear model (Casares-Magaz et al. 2016):
/// `rho(ADC) = rho_max (ADC_w - ADC) / (ADC_w - ADC_min)`, floored at
/// `rho_min > 0` (ADC at or above free water would give 0 and `ln 0`) and
/// capped at `rho_max` (ADC below `ADC_min`); both are reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DensitySpec {
    /// The ADC image, prepared to mm^2/s (use `Normalization::Adc`).
    pub image: ImageSource,
    /// Diffusivity of free water (mm^2/s).
    #[serde(default = "adc_water")]
    pub adc_water_mm2_s: f64,
    /// ADC of the densest tissue (mm^2/s): a value or a target statistic
    /// such as `"min"`.
    pub adc_min_mm2_s: Level,
    /// Density at `ADC_min` (clonogens per cm^3).
    pub rho_max_per_cm3: f64,
    /// Density floor (clonogens per cm^3, > 0).
    pub rho_min_per_cm3: f64,
    /// ADC of the reference voxel (mm^2/s), a value or a target statistic.
    pub reference_adc_mm2_s: Level,
}

/// The clonogen density of the linear ADC model, with saturation flags
/// `(rho, floored, capped)`.
///
/// ```
/// use dosepaint_biomap::clonogen_density;
/// // ADC half-way between ADC_min = 0.6e-3 and free water: half of rho_max.
/// let (rho, floored, capped) = clonogen_density(1.8e-3, 3.0e-3, 0.6e-3, 1e7, 1e4);
/// assert!((rho - 5e6).abs() < 1e-3 && !floored && !capped);
/// // At free water the floor applies.
/// assert_eq!(clonogen_density(3.0e-3, 3.0e-3, 0.6e-3, 1e7, 1e4), (1e4, true, false));
/// ```
pub fn clonogen_density(
    adc: f64,
    adc_water: f64,
    adc_min: f64,
    rho_max: f64,
    rho_min: f64,
) -> (f64, bool, bool) {
    let rho = rho_max * (adc_water - adc) / (adc_water - adc_min);
    if rho > rho_max {
        (rho_max, false, true)
    } else if rho < rho_min {
        (rho_min, true, false)
    } else {
        (rho, false, false)
    }
}

/// Proliferation from FLT uptake: the voxel's repopulation rate scales with
/// its uptake relative to a reference uptake, `1/Tpot_v = (U_v / U_ref) /
/// Tpot_ref` (a model choice: FLT retention measures thymidine-kinase-1
/// activity, i.e. S-phase fraction, Shields et al. 1998, Nat Med 4:1334; the
/// proportional link to the clonogen doubling rate follows the FLT-driven
/// proliferation model of Titz & Jeraj 2008, Phys Med Biol 53:4471).
/// Clonogens repopulate after the kick-off time `T_k` (Withers, Taylor &
/// Maciejewski 1988), which costs `ln 2 (T - T_k) / Tpot_v` of log cell kill
/// over an overall time `T` (the BED loss of `dosepaint_radiobio::Repopulation`
/// times alpha).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProliferationSpec {
    /// The FLT image (e.g. SUV).
    pub image: ImageSource,
    /// Uptake of a voxel that proliferates at `tpot_reference_days`.
    pub reference_uptake: Level,
    /// Potential doubling time at the reference uptake (days), e.g. 3 for head
    /// and neck (Fowler).
    pub tpot_reference_days: f64,
    /// Kick-off time of accelerated repopulation (days), e.g. 21.
    pub kickoff_days: f64,
    /// Overall treatment time (days); default: `n` fractions Monday to Friday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall_time_days: Option<f64>,
}

/// Per-voxel alpha and beta maps (images in the inputs) that replace the
/// uniform `lq` in the painted voxels; the reference voxel keeps `lq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoxelLqSpec {
    /// Image of alpha (Gy^-1, > 0).
    pub alpha_image: String,
    /// Image of beta (Gy^-2, >= 0).
    pub beta_image: String,
}

/// Iso-effect dose painting: in every target voxel the total dose `D_v` (in
/// the inputs' `n` fractions) that leaves the same expected number of
/// surviving clonogens per unit volume as the reference voxel (`rho_ref`,
/// the oxic `lq`, proliferating at the reference rate) given
/// `reference_dose_gy`:
///
/// `alpha_v D_v + beta_v D_v^2 / n = ln(rho_v / rho_ref) + alpha D_ref +
/// beta D_ref^2 / n + ln 2 (T - T_k)+ (1/Tpot_v - 1/Tpot_ref)`
///
/// with `alpha_v = alpha / OER_alpha(pO2_v)` and `beta_v = beta /
/// OER_beta(pO2_v)^2` (`shared/reference/dose_painting.md`). Each component is
/// optional; which are given decides the physics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoEffectSpec {
    /// Radiosensitivity of well-oxygenated tumour cells.
    pub lq: LqParams,
    /// Dose to the reference voxel (Gy, total course), e.g. 70.
    pub reference_dose_gy: f64,
    /// Hypoxia: uptake -> pO2 -> OER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oxygen: Option<OxygenSpec>,
    /// Cellularity: ADC -> clonogen density.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density: Option<DensitySpec>,
    /// Proliferation: FLT -> repopulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proliferation: Option<ProliferationSpec>,
    /// Per-voxel alpha and beta maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voxel_lq: Option<VoxelLqSpec>,
    /// Dose to the base region outside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dose_gy: Option<f64>,
    /// Dose floor inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_gy: Option<f64>,
    /// Dose cap inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_gy: Option<f64>,
}

impl IsoEffectSpec {
    /// An iso-effect spec with no component (every voxel gets the reference
    /// dose until components are added).
    pub fn new(lq: LqParams, reference_dose_gy: f64) -> Self {
        Self {
            lq,
            reference_dose_gy,
            oxygen: None,
            density: None,
            proliferation: None,
            voxel_lq: None,
            base_dose_gy: None,
            floor_gy: None,
            cap_gy: None,
        }
    }

    /// The same spec without a hypoxic modifier (to compare a prescription
    /// with and without the drug).
    #[must_use]
    pub fn without_modifier(mut self) -> Self {
        if let Some(o) = self.oxygen.as_mut() {
            o.modifier = None;
        }
        self
    }
}

/// Which labelled variant of [`MappingSpec`] an iso-effect mapping came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsoKind {
    Hypoxia,
    Cellularity,
    Proliferation,
    General,
}

/// A validated iso-effect mapping.
#[derive(Debug, Clone)]
pub(crate) struct IsoEffectMapping {
    spec: IsoEffectSpec,
    kind: IsoKind,
    oer: Option<OerModel>,
    painting: Painting,
}

impl IsoEffectMapping {
    pub(crate) fn new(spec: &IsoEffectSpec, kind: IsoKind) -> Result<Self> {
        let name = kind.name();
        let required = match kind {
            IsoKind::Hypoxia => spec.oxygen.is_none().then_some("oxygen"),
            IsoKind::Cellularity => spec.density.is_none().then_some("density"),
            IsoKind::Proliferation => spec.proliferation.is_none().then_some("proliferation"),
            IsoKind::General => None,
        };
        if let Some(field) = required {
            return Err(Error::invalid(
                format!("{name} mapping"),
                format!("needs its `{field}` component"),
            ));
        }
        dose(&format!("{name} reference_dose_gy"), spec.reference_dose_gy)?;
        let oer = match &spec.oxygen {
            Some(o) => {
                o.image.check()?;
                o.po2.check()?;
                Some(match &o.modifier {
                    Some(m) => m.apply(&o.oer)?,
                    None => o.oer,
                })
            }
            None => None,
        };
        if let Some(d) = &spec.density {
            d.image.check()?;
            positive("density adc_water_mm2_s", d.adc_water_mm2_s)?;
            d.adc_min_mm2_s.check("density adc_min_mm2_s")?;
            d.reference_adc_mm2_s.check("density reference_adc_mm2_s")?;
            positive("density rho_max_per_cm3", d.rho_max_per_cm3)?;
            positive("density rho_min_per_cm3", d.rho_min_per_cm3)?;
            if d.rho_min_per_cm3 > d.rho_max_per_cm3 {
                return Err(Error::invalid(
                    "density model",
                    format!(
                        "rho_min ({}) exceeds rho_max ({})",
                        d.rho_min_per_cm3, d.rho_max_per_cm3
                    ),
                ));
            }
            if let Level::Value(a) = d.adc_min_mm2_s
                && a >= d.adc_water_mm2_s
            {
                return Err(Error::invalid(
                    "density model",
                    format!(
                        "adc_min ({a}) must be below free water ({})",
                        d.adc_water_mm2_s
                    ),
                ));
            }
        }
        if let Some(p) = &spec.proliferation {
            p.image.check()?;
            p.reference_uptake.check("proliferation reference_uptake")?;
            // Validated by radiobio's own constructor.
            Repopulation::tpot(
                p.kickoff_days,
                spec.lq.alpha_per_gy(),
                p.tpot_reference_days,
            )?;
            if let Some(t) = p.overall_time_days {
                non_negative("proliferation overall_time_days", t)?;
            }
        }
        if let Some(v) = &spec.voxel_lq {
            for n in [&v.alpha_image, &v.beta_image] {
                if n.trim().is_empty() {
                    return Err(Error::invalid("voxel_lq", "an image name is empty"));
                }
            }
        }
        Ok(Self {
            spec: spec.clone(),
            kind,
            oer,
            painting: Painting::new(spec.base_dose_gy, spec.floor_gy, spec.cap_gy, name)?,
        })
    }

    fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = &self.spec.oxygen {
            let drug = o
                .modifier
                .as_ref()
                .map(|m| format!(" with {} (SER {})", m.name, m.sensitizer_enhancement_ratio))
                .unwrap_or_default();
            parts.push(format!("hypoxia from {}{drug}", o.image.label()));
        }
        if let Some(d) = &self.spec.density {
            parts.push(format!("cellularity from {}", d.image.label()));
        }
        if let Some(p) = &self.spec.proliferation {
            parts.push(format!("proliferation from {}", p.image.label()));
        }
        if self.spec.voxel_lq.is_some() {
            parts.push("voxel alpha/beta maps".into());
        }
        if parts.is_empty() {
            parts.push("no modifiers".into());
        }
        format!(
            "iso-effect ({}) re {} Gy, alpha {} /Gy, beta {} /Gy^2",
            parts.join(", "),
            self.spec.reference_dose_gy,
            self.spec.lq.alpha_per_gy(),
            self.spec.lq.beta_per_gy2()
        )
    }

    fn to_spec(&self) -> MappingSpec {
        let s = self.spec.clone();
        match self.kind {
            IsoKind::Hypoxia => MappingSpec::Hypoxia(s),
            IsoKind::Cellularity => MappingSpec::Cellularity(s),
            IsoKind::Proliferation => MappingSpec::Proliferation(s),
            IsoKind::General => MappingSpec::IsoEffect(s),
        }
    }
}

impl IsoKind {
    fn name(self) -> &'static str {
        match self {
            IsoKind::Hypoxia => "hypoxia",
            IsoKind::Cellularity => "cellularity",
            IsoKind::Proliferation => "proliferation",
            IsoKind::General => "iso-effect",
        }
    }
}

struct DensityPrep<'a> {
    img: Prepared<'a>,
    adc_water: f64,
    adc_min: f64,
    rho_max: f64,
    rho_min: f64,
    ln_rho_ref: f64,
}

impl DoseMapping for IsoEffectMapping {
    map_via_paint!();

    #[allow(clippy::too_many_lines)]
    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let s = &self.spec;
        let n = inputs.fractions();
        let target = inputs.target_indices();
        let grid = inputs.grid();
        let label = self.label();
        let mut report = MappingReport::default();
        let e_ref = s.lq.effect(s.reference_dose_gy, n);

        let oxygen = match &s.oxygen {
            Some(o) => Some((
                prepare(&o.image, inputs)?,
                &o.po2,
                self.oer.expect("validated"),
            )),
            None => None,
        };
        let density = match &s.density {
            Some(d) => {
                let img = prepare(&d.image, inputs)?;
                let [adc_min, adc_ref] =
                    resolve_levels([&d.adc_min_mm2_s, &d.reference_adc_mm2_s], &img, target);
                if adc_min.partial_cmp(&d.adc_water_mm2_s) != Some(std::cmp::Ordering::Less) {
                    return Err(Error::invalid(
                        "density model",
                        format!(
                            "ADC_min ({} = {adc_min} mm^2/s) must be below free water ({} mm^2/s)",
                            d.adc_min_mm2_s, d.adc_water_mm2_s
                        ),
                    ));
                }
                let (rho_ref, _, _) = clonogen_density(
                    adc_ref,
                    d.adc_water_mm2_s,
                    adc_min,
                    d.rho_max_per_cm3,
                    d.rho_min_per_cm3,
                );
                report.notes.push(format!(
                    "cellularity: ADC_min {adc_min:.4e} mm^2/s, reference ADC {adc_ref:.4e} mm^2/s \
                     -> rho_ref {rho_ref:.4e} /cm^3"
                ));
                Some(DensityPrep {
                    img,
                    adc_water: d.adc_water_mm2_s,
                    adc_min,
                    rho_max: d.rho_max_per_cm3,
                    rho_min: d.rho_min_per_cm3,
                    ln_rho_ref: rho_ref.ln(),
                })
            }
            None => None,
        };
        let proliferation = match &s.proliferation {
            Some(p) => {
                let img = prepare(&p.image, inputs)?;
                let [u_ref] = resolve_levels([&p.reference_uptake], &img, target);
                if u_ref.is_nan() || u_ref <= 0.0 {
                    return Err(Error::invalid(
                        "proliferation reference_uptake",
                        format!("{} = {u_ref} must be positive", p.reference_uptake),
                    ));
                }
                let t = p
                    .overall_time_days
                    .unwrap_or_else(|| dosepaint_radiobio::weekday_overall_time_days(n));
                let alpha = s.lq.alpha_per_gy();
                let repop = Repopulation::tpot(p.kickoff_days, alpha, p.tpot_reference_days)?;
                // Log cell kill lost to repopulation at the reference rate:
                // alpha * BED loss = ln 2 (T - T_k)+ / Tpot_ref.
                let l_ref = alpha * repop.try_bed_loss_gy(t)?;
                if l_ref <= 0.0 {
                    report.notes.push(format!(
                        "proliferation: overall time {t} d does not exceed the kick-off time {} d; \
                         FLT uptake has no effect",
                        p.kickoff_days
                    ));
                }
                Some((img, u_ref, l_ref))
            }
            None => None,
        };
        let voxel_lq = match &s.voxel_lq {
            Some(v) => Some((inputs.image(&v.alpha_image)?, inputs.image(&v.beta_image)?)),
            None => None,
        };

        // Tally slots.
        const ANOXIC: usize = 0;
        const OXIC: usize = 1;
        const RHO_FLOOR: usize = 2;
        const RHO_CAP: usize = 3;
        const NO_PROLIF: usize = 4;
        const NO_DOSE: usize = 5;
        let painted = self.painting.paint(inputs, &label, |v, tally| {
            let mut lq = s.lq;
            if let Some((a, b)) = voxel_lq {
                let (a, b) = (f64::from(a.as_slice()[v]), f64::from(b.as_slice()[v]));
                lq = LqParams::new(a, b).map_err(|e| {
                    Error::voxel("voxel alpha/beta maps", grid.voxel_index(v), e.to_string())
                })?;
            }
            if let Some((img, model, oer)) = &oxygen {
                let (p, sat) = model
                    .po2(img.at(v))
                    .map_err(|e| Error::voxel("pO2 model", grid.voxel_index(v), e.to_string()))?;
                match sat {
                    Po2Saturation::Anoxic => tally[ANOXIC] += 1,
                    Po2Saturation::Oxic => tally[OXIC] += 1,
                    Po2Saturation::None => {}
                }
                lq = oer.hypoxic_lq(&lq, p)?;
            }
            let mut effect = e_ref;
            if let Some(d) = &density {
                let (rho, floored, capped) =
                    clonogen_density(d.img.at(v), d.adc_water, d.adc_min, d.rho_max, d.rho_min);
                tally[RHO_FLOOR] += usize::from(floored);
                tally[RHO_CAP] += usize::from(capped);
                effect += rho.ln() - d.ln_rho_ref;
            }
            if let Some((img, u_ref, l_ref)) = &proliferation {
                let mut q = img.at(v) / u_ref;
                if q <= 0.0 {
                    tally[NO_PROLIF] += 1;
                    q = 0.0;
                }
                effect += l_ref * (q - 1.0);
            }
            if effect <= 0.0 {
                tally[NO_DOSE] += 1;
                return Ok(0.0);
            }
            Ok(dose_for_log_cell_kill(&lq, effect, n)?)
        })?;
        if let Some(o) = &s.oxygen {
            let (lo, hi) = match &o.po2 {
                Po2Model::Binding { max_po2_mmhg, .. } => (0.0, *max_po2_mmhg),
                Po2Model::Table { points } => (points[points.len() - 1][1], points[0][1]),
                Po2Model::Direct => (0.0, 0.0),
            };
            report.adjust(&label, AdjustmentKind::Po2Anoxic, lo, painted.tally[ANOXIC]);
            report.adjust(&label, AdjustmentKind::Po2Oxic, hi, painted.tally[OXIC]);
        }
        if let Some(d) = &s.density {
            report.adjust(
                &label,
                AdjustmentKind::DensityFloor,
                d.rho_min_per_cm3,
                painted.tally[RHO_FLOOR],
            );
            report.adjust(
                &label,
                AdjustmentKind::DensityCeiling,
                d.rho_max_per_cm3,
                painted.tally[RHO_CAP],
            );
        }
        report.adjust(
            &label,
            AdjustmentKind::NoProliferation,
            0.0,
            painted.tally[NO_PROLIF],
        );
        report.adjust(
            &label,
            AdjustmentKind::NoDoseNeeded,
            0.0,
            painted.tally[NO_DOSE],
        );
        self.painting.finish(
            inputs,
            painted,
            label,
            serde_json::to_string(&self.to_spec())?,
            report,
        )
    }

    fn describe(&self) -> String {
        self.label()
    }

    fn spec(&self) -> Option<MappingSpec> {
        Some(self.to_spec())
    }
}
