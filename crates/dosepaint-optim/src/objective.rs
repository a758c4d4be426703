//! The objective traits and the helpers that map structures and dose maps
//! onto matrix rows.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use dosepaint_core::{DoseInfluence, Structure, Volume};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What [`Objective::add_curvature`] could say about the second derivatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CurvatureKind {
    /// The objective is a sum of one-dimensional piecewise-quadratic functions
    /// of the row doses, and the curvature written is exact on the current
    /// piece. Plans made only of such objectives can be solved by the exact
    /// quadratic solver (feature `lapack`).
    PiecewiseQuadratic,
    /// The curvature written is an estimate of the diagonal of the Hessian
    /// (good enough to scale a preconditioner).
    Approximate,
    /// Nothing was written.
    Unavailable,
}

/// An objective on the dose of the matrix rows (voxels), to be minimized.
///
/// Implementors read the doses of their own rows from `dose_rows` (the dose of
/// *every* row of the [`DoseInfluence`], as given by `dose_into`) and add
/// `weight * df/d(dose)` into `grad_rows` at those rows. The trait is object
/// safe: a plan holds `Box<dyn Objective>`.
///
/// Built-in objectives are normalised per voxel (means over their rows), so
/// that weights compare across structures of different size.
pub trait Objective: Send + Sync + fmt::Debug {
    /// A short human-readable name, e.g. `"PTV squared deviation"`.
    fn name(&self) -> &str;

    /// The rows (ascending, no duplicates) the objective reads.
    fn rows(&self) -> &[u32];

    /// Returns the objective value `f(dose)` and adds `weight * grad f` into
    /// `grad_rows` (same length as `dose_rows`).
    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64;

    /// The objective value alone. The default calls
    /// [`Objective::value_and_gradient`] with a temporary buffer; built-ins
    /// override it.
    fn value(&self, dose_rows: &[f64]) -> f64 {
        let mut scratch = vec![0.0; dose_rows.len()];
        self.value_and_gradient(dose_rows, 0.0, &mut scratch)
    }

    /// Adds `weight *` (an estimate of) `d^2 f / d(dose_i)^2` into
    /// `curvature_rows` and says how good that is. Used for diagonal
    /// preconditioning and by the exact quadratic solver. The default adds
    /// nothing.
    fn add_curvature(
        &self,
        _dose_rows: &[f64],
        _weight: f64,
        _curvature_rows: &mut [f64],
    ) -> CurvatureKind {
        CurvatureKind::Unavailable
    }

    /// A prescribed mean dose (Gy) over the objective's rows, if the objective
    /// has one (used only for reports and start points).
    fn mean_prescribed_dose(&self) -> Option<f64> {
        None
    }

    /// Checks the objective against a matrix of `n_rows` rows; called once
    /// when it is added to a problem. The default checks that the rows are
    /// non-empty, ascending, unique and in range.
    ///
    /// # Errors
    /// [`Error::Empty`] or [`Error::InvalidParameter`] naming the objective.
    fn validate(&self, n_rows: usize) -> Result<()> {
        check_rows(self.name(), self.rows(), n_rows)
    }
}

/// An objective on the beamlet weights themselves (e.g. fluence smoothness),
/// to be minimized.
pub trait FluenceObjective: Send + Sync + fmt::Debug {
    /// A short human-readable name.
    fn name(&self) -> &str;

    /// Returns `f(w)` and adds `weight * grad f` into `grad` (one entry per
    /// beamlet).
    fn value_and_gradient(&self, weights: &[f64], weight: f64, grad: &mut [f64]) -> f64;

    /// For a quadratic `f(w) = w^T Q w / 2 + ...`: calls `add(i, j, weight *
    /// Q[i][j])` for every non-zero entry of the Hessian `Q` (both triangles)
    /// and returns `true`. The default returns `false` (not quadratic).
    fn for_each_hessian_entry(
        &self,
        _weight: f64,
        _add: &mut dyn FnMut(usize, usize, f64),
    ) -> bool {
        false
    }

    /// Checks the objective against `n_beamlets` beamlets.
    ///
    /// # Errors
    /// When the objective refers to beamlets that do not exist.
    fn validate(&self, n_beamlets: usize) -> Result<()>;
}

/// Checks a row list: non-empty, strictly ascending, in range.
pub(crate) fn check_rows(name: &str, rows: &[u32], n_rows: usize) -> Result<()> {
    if rows.is_empty() {
        return Err(Error::Empty {
            what: format!("objective \"{name}\""),
            reason: "it covers no row of the dose-influence matrix".into(),
        });
    }
    if let Some(k) = rows.windows(2).position(|w| w[0] >= w[1]) {
        return Err(Error::invalid(
            format!("rows of objective \"{name}\""),
            format!(
                "must be strictly ascending; entries {k} and {} hold {} and {}",
                k + 1,
                rows[k],
                rows[k + 1]
            ),
        ));
    }
    let last = *rows.last().expect("not empty") as usize;
    if last >= n_rows {
        return Err(Error::invalid(
            format!("rows of objective \"{name}\""),
            format!("row {last} is beyond the matrix's {n_rows} rows"),
        ));
    }
    Ok(())
}

/// The matrix rows of a structure's voxels.
///
/// # Errors
/// A grid mismatch, an empty structure, or a structure none of whose voxels
/// has a row in the matrix.
pub fn structure_rows(influence: &DoseInfluence, structure: &Structure) -> Result<Vec<u32>> {
    structure.ensure_not_empty("an objective")?;
    let rows = influence.rows_in_mask(structure.mask())?;
    if rows.is_empty() {
        return Err(Error::Empty {
            what: format!("structure \"{}\"", structure.name()),
            reason: "none of its voxels is a row of the dose-influence matrix \
                     (was the matrix computed for these voxels?)"
                .into(),
        });
    }
    Ok(rows)
}

/// The values of a dose map (Gy) at the voxels of `rows`, checked finite and
/// non-negative.
///
/// # Errors
/// A grid mismatch or a NaN, infinite or negative value (the voxel is named).
pub fn map_at_rows(
    influence: &DoseInfluence,
    rows: &[u32],
    map: &Volume<f32>,
    what: &str,
) -> Result<Vec<f64>> {
    influence
        .grid()
        .ensure_same(map.grid(), &format!("{what} vs dose-influence grid"))?;
    let values = map.as_slice();
    let voxels = influence.voxels();
    rows.iter()
        .map(|&r| {
            let v = voxels[r as usize] as usize;
            let d = f64::from(values[v]);
            if d.is_finite() && d >= 0.0 {
                Ok(d)
            } else {
                Err(Error::invalid(
                    what,
                    format!(
                        "voxel {:?} holds {d} Gy; doses must be finite and non-negative",
                        map.grid().voxel_index(v)
                    ),
                ))
            }
        })
        .collect()
}

/// The `(i, j, k)` index of the voxel of a row, for messages.
pub(crate) fn voxel_of_row(influence: &DoseInfluence, row: u32) -> [usize; 3] {
    influence
        .grid()
        .voxel_index(influence.voxels()[row as usize] as usize)
}

/// A reusable scratch buffer inside an objective (evaluation takes `&self`).
/// Cloning gives a fresh, empty buffer; serialisation skips it.
#[derive(Default)]
pub(crate) struct Scratch(Mutex<Vec<f64>>);

impl Scratch {
    /// The buffer, resized to `n` (contents unspecified).
    pub(crate) fn get(&self, n: usize) -> MutexGuard<'_, Vec<f64>> {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.resize(n, 0.0);
        guard
    }
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scratch")
    }
}

impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
