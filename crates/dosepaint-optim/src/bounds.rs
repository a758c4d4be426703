//! Box bounds on the optimization variables and the problem trait the
//! bound-constrained solvers work on.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Lower and upper bounds `l <= x <= u` on every variable (`u` may be
/// `+inf`). Beamlet weights are bounded below by 0.
///
/// ```
/// use dosepaint_optim::Bounds;
/// let b = Bounds::new(vec![0.0, 0.0], vec![1.0, f64::INFINITY])?;
/// let mut x = vec![-1.0, 5.0];
/// b.project(&mut x);
/// assert_eq!(x, vec![0.0, 5.0]);
/// // Projected gradient: at x = (0, 5) with gradient (1, -2) only the second
/// // variable can move.
/// assert_eq!(b.projected_gradient_norm(&x, &[1.0, -2.0]), 2.0);
/// # Ok::<(), dosepaint_optim::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    lower: Vec<f64>,
    upper: Vec<f64>,
}

impl Bounds {
    /// `x >= 0` for `n` variables.
    pub fn non_negative(n: usize) -> Self {
        Self {
            lower: vec![0.0; n],
            upper: vec![f64::INFINITY; n],
        }
    }

    /// Explicit bounds.
    ///
    /// # Errors
    /// Lengths differ, a NaN, a lower bound that is not finite, or a lower
    /// bound above its upper bound (the variable is named).
    pub fn new(lower: Vec<f64>, upper: Vec<f64>) -> Result<Self> {
        if lower.len() != upper.len() {
            return Err(Error::length("upper bounds", lower.len(), upper.len()));
        }
        for (j, (&l, &u)) in lower.iter().zip(&upper).enumerate() {
            if !l.is_finite() || u.is_nan() || u == f64::NEG_INFINITY {
                return Err(Error::invalid(
                    "bounds",
                    format!(
                        "variable {j}: [{l}, {u}] (lower must be finite, upper a number or +inf)"
                    ),
                ));
            }
            if l > u {
                return Err(Error::Contradictory(format!(
                    "variable {j}: lower bound {l} is above upper bound {u}"
                )));
            }
        }
        Ok(Self { lower, upper })
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.lower.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    /// The lower bounds.
    pub fn lower(&self) -> &[f64] {
        &self.lower
    }

    /// The upper bounds.
    pub fn upper(&self) -> &[f64] {
        &self.upper
    }

    /// Clamps `x` into the box.
    pub fn project(&self, x: &mut [f64]) {
        for ((v, &l), &u) in x.iter_mut().zip(&self.lower).zip(&self.upper) {
            *v = v.clamp(l, u);
        }
    }

    /// The first variable outside the box, if any: `(index, value)`.
    pub fn first_violation(&self, x: &[f64]) -> Option<(usize, f64)> {
        x.iter()
            .zip(self.lower.iter().zip(&self.upper))
            .position(|(v, (l, u))| !(v >= l && v <= u))
            .map(|j| (j, x[j]))
    }

    /// `|| P(x - g) - x ||_inf`, the first-order optimality measure of a
    /// bound-constrained problem: zero exactly at a KKT point.
    pub fn projected_gradient_norm(&self, x: &[f64], g: &[f64]) -> f64 {
        let mut m = 0.0f64;
        for j in 0..x.len() {
            let p = (x[j] - g[j]).clamp(self.lower[j], self.upper[j]) - x[j];
            m = m.max(p.abs());
        }
        m
    }
}

/// A smooth objective over a box, as the bound-constrained solvers of this
/// crate see it: one call gives the value and the gradient (for the fluence
/// problem: one `D w` and one `D^T g`).
///
/// Implement it for your own problem to use [`ProjectedLbfgs`] or
/// [`ProjectedGradient`] on it; [`FluenceProblem`] implements it.
///
/// [`ProjectedLbfgs`]: crate::ProjectedLbfgs
/// [`ProjectedGradient`]: crate::ProjectedGradient
/// [`FluenceProblem`]: crate::FluenceProblem
pub trait BoxProblem {
    /// The bounds (their length is the number of variables).
    fn bounds(&self) -> &Bounds;

    /// `f(x)`, with the gradient written into `grad` (overwritten).
    ///
    /// # Errors
    /// Whatever the problem cannot evaluate; the solver stops with it.
    fn cost_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> Result<f64, argmin::core::Error>;

    /// Optional cheap line evaluations: prepares `F(x + t p)` for the `x` of
    /// the last [`BoxProblem::cost_and_gradient`] call (or the last committed
    /// line point). Returns `false` (the default) when unsupported; the
    /// solvers then search with full evaluations.
    ///
    /// The fluence problem supports it at the price of one `D p`: along a
    /// segment the dose is affine, `D (x + t p) = D x + t D p`, so each trial
    /// step costs only objective evaluations on the rows.
    ///
    /// # Errors
    /// Whatever the problem cannot evaluate.
    fn line_prepare(&self, _p: &[f64]) -> Result<bool, argmin::core::Error> {
        Ok(false)
    }

    /// `F(x + t p)` and `dF/dt` after [`BoxProblem::line_prepare`].
    ///
    /// # Errors
    /// Whatever the problem cannot evaluate; the default refuses.
    fn line_value(&self, _t: f64) -> Result<(f64, f64), argmin::core::Error> {
        Err(crate::Error::Unsupported("line evaluations".into()).into())
    }

    /// Moves to `x + t p` (written into `x_out`), writes the gradient there
    /// and returns `F`.
    ///
    /// # Errors
    /// Whatever the problem cannot evaluate; the default refuses.
    fn line_commit(
        &self,
        _t: f64,
        _x_out: &mut [f64],
        _grad: &mut [f64],
    ) -> Result<f64, argmin::core::Error> {
        Err(crate::Error::Unsupported("line evaluations".into()).into())
    }
}

impl<T: BoxProblem + ?Sized> BoxProblem for &T {
    fn bounds(&self) -> &Bounds {
        (**self).bounds()
    }

    fn cost_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> Result<f64, argmin::core::Error> {
        (**self).cost_and_gradient(x, grad)
    }

    fn line_prepare(&self, p: &[f64]) -> Result<bool, argmin::core::Error> {
        (**self).line_prepare(p)
    }

    fn line_value(&self, t: f64) -> Result<(f64, f64), argmin::core::Error> {
        (**self).line_value(t)
    }

    fn line_commit(
        &self,
        t: f64,
        x_out: &mut [f64],
        grad: &mut [f64],
    ) -> Result<f64, argmin::core::Error> {
        (**self).line_commit(t, x_out, grad)
    }
}
