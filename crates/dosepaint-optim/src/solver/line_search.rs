//! Projected backtracking line search along the projection arc
//! `x(alpha) = P(x + alpha d)` with the Armijo condition
//! `F(x(alpha)) <= F(x) + c1 g^T (x(alpha) - x)` (Bertsekas, Nonlinear
//! Programming, 2nd ed., section 2.3), backtracking by safeguarded quadratic
//! interpolation.

use argmin::core::Problem;

use crate::Bounds;
use crate::bounds::BoxProblem;
use crate::solver::dot;

/// Parameters of the line search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineSearch {
    /// Sufficient-decrease constant.
    pub(crate) c1: f64,
    /// Most trial points per search.
    pub(crate) max_trials: u32,
    /// Curvature constant of the strong Wolfe condition
    /// `|dF/dt| <= c2 |dF/dt(0)|` (segment search).
    pub(crate) c2: f64,
}

impl Default for LineSearch {
    fn default() -> Self {
        Self {
            c1: 1e-4,
            max_trials: 40,
            c2: 0.1,
        }
    }
}

/// An accepted step: the trial point and gradient are in the output
/// buffers.
pub(crate) struct Accepted {
    pub(crate) alpha: f64,
    pub(crate) f: f64,
    pub(crate) trials: u32,
}

impl LineSearch {
    /// Searches from `alpha0`; on success `xt`, `gt` hold the new point and
    /// its gradient. `Ok(None)` when no decrease was found.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search<O: BoxProblem>(
        &self,
        problem: &mut Problem<O>,
        bounds: &Bounds,
        x: &[f64],
        f: f64,
        g: &[f64],
        d: &[f64],
        alpha0: f64,
        xt: &mut [f64],
        gt: &mut [f64],
    ) -> Result<(Option<Accepted>, u32), argmin::core::Error> {
        let mut alpha = alpha0;
        let xscale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for trial in 1..=self.max_trials {
            for j in 0..x.len() {
                xt[j] = (x[j] + alpha * d[j]).clamp(bounds.lower()[j], bounds.upper()[j]);
            }
            if alpha * dmax <= 1e-15 * xscale {
                // The step vanishes: nothing to gain at this precision.
                return Ok((None, trial - 1));
            }
            let slope = g
                .iter()
                .zip(xt.iter().zip(x))
                .map(|(g, (a, b))| g * (a - b))
                .sum::<f64>();
            if slope >= 0.0 {
                // Projection folded the step into an ascent direction; for a
                // small enough step the path descends again (d descends on
                // the free variables), so shrink without evaluating.
                alpha *= 0.1;
                continue;
            }
            let ft = problem.problem("cost_count", |p| p.cost_and_gradient(xt, gt))?;
            if ft.is_finite() && ft <= f + self.c1 * slope {
                return Ok((
                    Some(Accepted {
                        alpha,
                        f: ft,
                        trials: trial,
                    }),
                    trial,
                ));
            }
            // Quadratic model phi(t) = f + slope t/alpha + c t^2 through phi(alpha) = ft.
            let next = if ft.is_finite() {
                let curv = ft - f - slope;
                if curv > 0.0 {
                    -slope * alpha / (2.0 * curv)
                } else {
                    0.5 * alpha
                }
            } else {
                0.1 * alpha
            };
            alpha = next.clamp(0.01 * alpha, 0.5 * alpha);
        }
        Ok((None, self.max_trials))
    }
}

/// Searches along the feasible segment `x + t p`, `0 < t <= t_max` (`p`
/// the projected unit step `P(x + d) - x`, `t_max` where the segment leaves
/// the box) with the problem's cheap line evaluations: the unit step when
/// it is a strong Wolfe point (`|dF/dt| <= c2 |dF/dt(0)|`, `c2 = 0.1`, and
/// Armijo), otherwise extrapolation or bracketing and secant steps on
/// `dF/dt` until such a point or a few trials, keeping the best Armijo point. Returns
/// `Ok(None)` when the problem has no line evaluations or no Armijo point
/// was found (the caller then falls back to [`LineSearch::search`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn segment_search<O: BoxProblem>(
    ls: &LineSearch,
    problem: &mut Problem<O>,
    bounds: &Bounds,
    x: &[f64],
    f: f64,
    g: &[f64],
    p: &[f64],
    xt: &mut [f64],
    gt: &mut [f64],
) -> Result<Option<Accepted>, argmin::core::Error> {
    let slope0 = dot(g, p);
    if slope0 >= 0.0 || p.iter().all(|v| *v == 0.0) {
        return Ok(None);
    }
    let mut t_max = f64::INFINITY;
    for j in 0..x.len() {
        if p[j] < 0.0 {
            t_max = t_max.min((x[j] - bounds.lower()[j]) / -p[j]);
        } else if p[j] > 0.0 {
            t_max = t_max.min((bounds.upper()[j] - x[j]) / p[j]);
        }
    }
    let t_max = t_max.clamp(1.0, 1e3);
    if !problem.problem("line_prepare", |pr| pr.line_prepare(p))? {
        return Ok(None);
    }
    let armijo = |t: f64, ft: f64| ft.is_finite() && ft <= f + ls.c1 * t * slope0;
    let mut eval = |t: f64| problem.problem("line_value", |pr| pr.line_value(t));
    let mut best: Option<(f64, f64)> = None;
    let consider = |t: f64, ft: f64, best: &mut Option<(f64, f64)>| {
        if armijo(t, ft) && best.is_none_or(|(_, fb)| ft < fb) {
            *best = Some((t, ft));
        }
    };
    let (mut lo, mut f_lo, mut d_lo) = (0.0, f, slope0);
    let mut t = 1.0;
    let (mut ft, mut dt) = eval(t)?;
    let mut trials = 1;
    consider(t, ft, &mut best);
    let wolfe = |ft: f64, dt: f64, t: f64| armijo(t, ft) && dt.abs() <= ls.c2 * slope0.abs();
    // The unit step is taken when it satisfies the strong Wolfe conditions.
    let unit_ok = wolfe(ft, dt, t);
    if unit_ok {
        best = Some((t, ft));
    }
    // Extrapolate while the function still decreases along the segment.
    while !unit_ok && dt < 0.0 && ft <= f_lo && t < t_max && trials < 6 {
        (lo, f_lo, d_lo) = (t, ft, dt);
        t = (2.0 * t).min(t_max);
        (ft, dt) = eval(t)?;
        trials += 1;
        consider(t, ft, &mut best);
    }
    if !unit_ok && (dt > 0.0 || ft > f_lo) {
        // Bracket [lo, t]: secant steps on the derivative.
        let (mut hi, mut d_hi) = (t, dt);
        while trials < 8 {
            if !(dt.is_finite() && ft.is_finite()) {
                break;
            }
            let width = hi - lo;
            let mut next = if d_hi > d_lo && d_hi > 0.0 {
                lo - d_lo * width / (d_hi - d_lo)
            } else {
                lo + 0.5 * width
            };
            next = next.clamp(lo + 0.05 * width, hi - 0.05 * width);
            let (fn_, dn) = eval(next)?;
            trials += 1;
            consider(next, fn_, &mut best);
            if wolfe(fn_, dn, next) {
                break;
            }
            if dn < 0.0 && fn_ <= f_lo {
                (lo, f_lo, d_lo) = (next, fn_, dn);
            } else {
                (hi, d_hi) = (next, dn);
            }
            ft = fn_;
            dt = dn;
        }
    }
    let Some((t_best, _)) = best else {
        return Ok(None);
    };
    let f_new = problem.problem("cost_count", |pr| pr.line_commit(t_best, xt, gt))?;
    for j in 0..x.len() {
        xt[j] = xt[j].clamp(bounds.lower()[j], bounds.upper()[j]);
    }
    Ok(Some(Accepted {
        alpha: t_best,
        f: f_new,
        trials,
    }))
}

/// `||P(x - g) - x||_inf`.
pub(crate) fn pg_norm(bounds: &Bounds, x: &[f64], g: &[f64]) -> f64 {
    bounds.projected_gradient_norm(x, g)
}

/// Directional derivative helper re-exported for the solvers.
pub(crate) fn slope(g: &[f64], d: &[f64]) -> f64 {
    dot(g, d)
}
