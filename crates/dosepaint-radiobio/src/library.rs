//! A small library of published parameter sets, as serde data that users can
//! extend and load from JSON or TOML (any serde format).
//!
//! Every parameter type validates itself while it is deserialised, so a set read
//! from a file is as trustworthy as one built in code.
//!
//! ```
//! use dosepaint_radiobio::ParameterLibrary;
//! let lib = ParameterLibrary::builtin();
//! let parotid = lib.lkb("quantec_parotid_xerostomia")?;
//! assert_eq!(parotid.td50_gy(), 39.9);
//! # Ok::<(), dosepaint_radiobio::Error>(())
//! ```
//!
//! A set in TOML (read with the `toml` crate, `toml::from_str::<ParameterLibrary>`):
//!
//! ```toml
//! [[sets]]
//! name = "my_cord"
//! tissue = "spinal cord"
//! endpoint = "myelopathy"
//! source = "my institution's fit"
//! [sets.parameters]
//! model = "lkb"
//! td50_gy = 66.5
//! m = 0.175
//! n = 0.05
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lq::{AlphaBeta, LqParams};
use crate::ntcp::{Lkb, LogitNtcp, RelativeSeriality};
use crate::oxygen::OerModel;
use crate::repopulation::Repopulation;
use crate::tcp::TcpPopulationParams;

/// The parameters of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelParameters {
    /// Lyman-Kutcher-Burman NTCP.
    Lkb(Lkb),
    /// Niemierko logistic EUD NTCP.
    Logit(LogitNtcp),
    /// Källman relative seriality NTCP.
    RelativeSeriality(RelativeSeriality),
    /// Population Poisson TCP.
    TcpPopulation(TcpPopulationParams),
    /// LQ alpha and beta.
    Lq(LqParams),
    /// An alpha/beta ratio alone.
    AlphaBeta {
        /// The ratio (Gy).
        alpha_beta_gy: AlphaBeta,
    },
    /// A repopulation time factor.
    Repopulation(Repopulation),
    /// An oxygen enhancement model.
    Oer(OerModel),
}

impl ModelParameters {
    /// Short name of the model kind (the serde tag).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelParameters::Lkb(_) => "lkb",
            ModelParameters::Logit(_) => "logit",
            ModelParameters::RelativeSeriality(_) => "relative_seriality",
            ModelParameters::TcpPopulation(_) => "tcp_population",
            ModelParameters::Lq(_) => "lq",
            ModelParameters::AlphaBeta { .. } => "alpha_beta",
            ModelParameters::Repopulation(_) => "repopulation",
            ModelParameters::Oer(_) => "oer",
        }
    }
}

/// A named, sourced parameter set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterSet {
    /// Unique key (snake_case by convention).
    pub name: String,
    /// Organ or tumour.
    pub tissue: String,
    /// Clinical endpoint the parameters were fitted to.
    pub endpoint: String,
    /// Bibliographic source.
    pub source: String,
    /// Caveats (dose convention, how a value was derived...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The parameters.
    pub parameters: ModelParameters,
}

/// A collection of parameter sets with unique names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "LibrarySpec")]
pub struct ParameterLibrary {
    sets: Vec<ParameterSet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibrarySpec {
    #[serde(default)]
    sets: Vec<ParameterSet>,
}

impl TryFrom<LibrarySpec> for ParameterLibrary {
    type Error = Error;
    fn try_from(s: LibrarySpec) -> Result<Self> {
        let mut lib = ParameterLibrary::default();
        for set in s.sets {
            lib.insert(set)?;
        }
        Ok(lib)
    }
}

fn set(
    name: &str,
    tissue: &str,
    endpoint: &str,
    source: &str,
    notes: Option<&str>,
    parameters: ModelParameters,
) -> ParameterSet {
    ParameterSet {
        name: name.to_string(),
        tissue: tissue.to_string(),
        endpoint: endpoint.to_string(),
        source: source.to_string(),
        notes: notes.map(str::to_string),
        parameters,
    }
}

const BURMAN: &str = "Burman C, Kutcher GJ, Emami B, Goitein M. Fitting of normal tissue tolerance data \
     to an analytic function. Int J Radiat Oncol Biol Phys 1991;21:123-135 (fits to Emami et al. 1991)";
const EQD2_NOTE: &str = "doses in 2 Gy fractions (convert to EQD2 first)";

impl ParameterLibrary {
    /// An empty library.
    pub fn new() -> Self {
        ParameterLibrary::default()
    }

    /// The built-in, sourced sets.
    pub fn builtin() -> Self {
        let lkb = |td50, m, n| {
            ModelParameters::Lkb(Lkb::new(td50, m, n).unwrap_or_else(|_| unreachable!()))
        };
        let mut sets = vec![
            set(
                "quantec_parotid_xerostomia",
                "parotid gland (mean dose)",
                "severe xerostomia (salivary function < 25 % of baseline)",
                "Deasy JO et al. Radiotherapy dose-volume effects on salivary gland function \
                 (QUANTEC). Int J Radiat Oncol Biol Phys 2010;76(3 Suppl):S58-S63",
                Some(EQD2_NOTE),
                lkb(39.9, 0.40, 1.0),
            ),
            set(
                "burman_spinal_cord_myelitis",
                "spinal cord",
                "myelitis / necrosis",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(66.5, 0.175, 0.05),
            ),
            set(
                "burman_larynx_cartilage_necrosis",
                "larynx",
                "cartilage necrosis",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(80.0, 0.17, 0.08),
            ),
            set(
                "burman_larynx_edema",
                "larynx",
                "laryngeal edema",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(70.0, 0.17, 0.08),
            ),
            set(
                "burman_parotid_xerostomia",
                "parotid gland",
                "xerostomia",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(46.0, 0.18, 0.70),
            ),
            set(
                "burman_lung_pneumonitis",
                "lung",
                "pneumonitis",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(24.5, 0.18, 0.87),
            ),
            set(
                "burman_heart_pericarditis",
                "heart",
                "pericarditis",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(48.0, 0.10, 0.35),
            ),
            set(
                "burman_brainstem_necrosis",
                "brainstem",
                "necrosis / infarction",
                BURMAN,
                Some(EQD2_NOTE),
                lkb(65.0, 0.14, 0.16),
            ),
            set(
                "seppenwoolde_lung_pneumonitis",
                "lung (both lungs minus GTV)",
                "radiation pneumonitis grade >= 2",
                "Seppenwoolde Y et al. Comparing different NTCP models that predict the \
                 incidence of radiation pneumonitis. Int J Radiat Oncol Biol Phys 2003;55:724-735",
                Some("fit to mean lung dose in 2 Gy fractions (alpha/beta 3 Gy)"),
                lkb(30.8, 0.37, 0.99),
            ),
            set(
                "quantec_rectum_late_toxicity",
                "rectum",
                "late rectal toxicity grade >= 2",
                "Michalski JM et al. Radiation dose-volume effects in radiation-induced rectal \
                 injury (QUANTEC). Int J Radiat Oncol Biol Phys 2010;76(3 Suppl):S123-S129",
                Some(EQD2_NOTE),
                lkb(76.9, 0.13, 0.09),
            ),
            set(
                "gagliardi_heart_cardiac_mortality",
                "heart",
                "cardiac mortality after breast radiotherapy",
                "Gagliardi G, Lax I, Ottolenghi A, Rutqvist LE. Long-term cardiac mortality after \
                 radiotherapy of breast cancer: application of the relative seriality model. \
                 Br J Radiol 1996;69:839-846",
                Some(EQD2_NOTE),
                ModelParameters::RelativeSeriality(
                    RelativeSeriality::new(52.2, 1.28, 1.0).unwrap_or_else(|_| unreachable!()),
                ),
            ),
            set(
                "webb_nahum_1993_tumour",
                "generic tumour",
                "local control (population Poisson TCP)",
                "Webb S, Nahum AE. A model for calculating tumour control probability in \
                 radiotherapy including the effects of inhomogeneous distributions of dose and \
                 clonogenic cell density. Phys Med Biol 1993;38:653-666",
                Some(
                    "alpha mean 0.35 /Gy, sd 0.08 /Gy, 1e7 clonogens/cm^3 as in Webb & Nahum; \
                     the alpha/beta of 10 Gy is the conventional value for squamous \
                     carcinoma (Fowler 1989), added here for fractionation",
                ),
                ModelParameters::TcpPopulation(
                    TcpPopulationParams::new(0.35, 0.08, 10.0, 1e7)
                        .unwrap_or_else(|_| unreachable!()),
                ),
            ),
            set(
                "fowler_2008_head_neck_tumour_repopulation",
                "head and neck squamous cell carcinoma",
                "tumour repopulation time factor",
                "Fowler JF. Optimum overall times II: extended modelling for head and neck \
                 radiotherapy. Clin Oncol (R Coll Radiol) 2008;20:113-126",
                Some("alpha/beta 10 Gy, alpha 0.35 /Gy, T_k 21 d, T_pot 3 d: 0.66 Gy10/day"),
                ModelParameters::Repopulation(
                    Repopulation::tpot(21.0, 0.35, 3.0).unwrap_or_else(|_| unreachable!()),
                ),
            ),
            set(
                "withers_1988_head_neck_tumour_repopulation",
                "head and neck squamous cell carcinoma",
                "tumour repopulation time factor",
                "Withers HR, Taylor JMG, Maciejewski B. The hazard of accelerated tumor clonogen \
                 repopulation during radiotherapy. Acta Oncol 1988;27:131-146",
                Some(
                    "onset about 4 weeks (T_k 28 d), about 0.6 Gy/day in 2 Gy fractions; stored \
                     as BED10: 0.6 x 1.2 = 0.72 Gy/day",
                ),
                ModelParameters::Repopulation(
                    Repopulation::dose_per_day(28.0, 0.72).unwrap_or_else(|_| unreachable!()),
                ),
            ),
            set(
                "carlson_2006_oer",
                "cells in vitro (aerobic vs hypoxic LQ parameters)",
                "oxygen enhancement of alpha and beta",
                "Carlson DJ, Stewart RD, Semenenko VA. Effects of oxygen on intrinsic radiation \
                 sensitivity: a test of the relationship between aerobic and hypoxic linear-\
                 quadratic (LQ) model parameters. Med Phys 2006;33:3105-3115",
                None,
                ModelParameters::Oer(OerModel::carlson_2006()),
            ),
            set(
                "schultheiss_2008_cervical_cord_alpha_beta",
                "cervical spinal cord",
                "myelopathy",
                "Schultheiss TE. The radiation dose-response of the human spinal cord. Int J \
                 Radiat Oncol Biol Phys 2008;71:1455-1459",
                None,
                ModelParameters::AlphaBeta {
                    alpha_beta_gy: AlphaBeta::new(0.87).unwrap_or_else(|_| unreachable!()),
                },
            ),
            set(
                "brenner_hall_1999_prostate_alpha_beta",
                "prostate carcinoma",
                "biochemical control",
                "Brenner DJ, Hall EJ. Fractionation and protraction for radiotherapy of prostate \
                 carcinoma. Int J Radiat Oncol Biol Phys 1999;43:1095-1101",
                None,
                ModelParameters::AlphaBeta {
                    alpha_beta_gy: AlphaBeta::new(1.5).unwrap_or_else(|_| unreachable!()),
                },
            ),
        ];
        sets.shrink_to_fit();
        ParameterLibrary { sets }
    }

    /// All sets, in insertion order.
    pub fn sets(&self) -> &[ParameterSet] {
        &self.sets
    }

    /// The set called `name`.
    pub fn get(&self, name: &str) -> Option<&ParameterSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Add a set; a name already present is an error.
    pub fn insert(&mut self, set: ParameterSet) -> Result<()> {
        if self.get(&set.name).is_some() {
            return Err(Error::DuplicateParameterSet(set.name));
        }
        self.sets.push(set);
        Ok(())
    }

    /// Add a set, replacing any set of the same name; returns the replaced set.
    pub fn upsert(&mut self, set: ParameterSet) -> Option<ParameterSet> {
        if let Some(existing) = self.sets.iter_mut().find(|s| s.name == set.name) {
            Some(std::mem::replace(existing, set))
        } else {
            self.sets.push(set);
            None
        }
    }

    /// Add every set of `other`; with `replace`, its sets win over same-named ones,
    /// otherwise a duplicate name is an error (and nothing is added).
    pub fn extend_from(&mut self, other: ParameterLibrary, replace: bool) -> Result<()> {
        if !replace && let Some(dup) = other.sets.iter().find(|s| self.get(&s.name).is_some()) {
            return Err(Error::DuplicateParameterSet(dup.name.clone()));
        }
        for s in other.sets {
            self.upsert(s);
        }
        Ok(())
    }

    fn lookup(&self, name: &str) -> Result<&ParameterSet> {
        self.get(name)
            .ok_or_else(|| Error::UnknownParameterSet(name.to_string()))
    }

    /// The parameters of set `name` read through `pick`, or [`Error::WrongModel`]
    /// naming `expected` when the set holds a model `pick` does not read.
    fn typed<T>(
        &self,
        name: &str,
        expected: &'static str,
        pick: impl FnOnce(&ModelParameters) -> Option<T>,
    ) -> Result<T> {
        let set = self.lookup(name)?;
        pick(&set.parameters).ok_or_else(|| Error::WrongModel {
            name: set.name.clone(),
            expected,
            found: set.parameters.kind(),
        })
    }

    /// The LKB model of set `name`.
    pub fn lkb(&self, name: &str) -> Result<Lkb> {
        self.typed(name, "lkb", |p| match p {
            ModelParameters::Lkb(m) => Some(*m),
            _ => None,
        })
    }

    /// The logit model of set `name`.
    pub fn logit(&self, name: &str) -> Result<LogitNtcp> {
        self.typed(name, "logit", |p| match p {
            ModelParameters::Logit(m) => Some(*m),
            _ => None,
        })
    }

    /// The relative seriality model of set `name`.
    pub fn relative_seriality(&self, name: &str) -> Result<RelativeSeriality> {
        self.typed(name, "relative_seriality", |p| match p {
            ModelParameters::RelativeSeriality(m) => Some(*m),
            _ => None,
        })
    }

    /// The population TCP parameters of set `name`.
    pub fn tcp_population(&self, name: &str) -> Result<TcpPopulationParams> {
        self.typed(name, "tcp_population", |p| match p {
            ModelParameters::TcpPopulation(m) => Some(*m),
            _ => None,
        })
    }

    /// The repopulation model of set `name`.
    pub fn repopulation(&self, name: &str) -> Result<Repopulation> {
        self.typed(name, "repopulation", |p| match p {
            ModelParameters::Repopulation(m) => Some(*m),
            _ => None,
        })
    }

    /// The OER model of set `name`.
    pub fn oer(&self, name: &str) -> Result<OerModel> {
        self.typed(name, "oer", |p| match p {
            ModelParameters::Oer(m) => Some(*m),
            _ => None,
        })
    }

    /// The alpha/beta ratio of set `name` (from an `alpha_beta`, `lq` or
    /// `tcp_population` set).
    pub fn alpha_beta(&self, name: &str) -> Result<AlphaBeta> {
        self.typed(name, "alpha_beta", |p| match p {
            ModelParameters::AlphaBeta { alpha_beta_gy } => Some(*alpha_beta_gy),
            ModelParameters::TcpPopulation(p) => Some(p.alpha_beta()),
            ModelParameters::Lq(lq) => lq.alpha_beta(),
            _ => None,
        })
    }
}
