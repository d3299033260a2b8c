//! Badges in the shields.io look (a grey label, a colored message):
//! `/badge/{check}.svg` (status), `/badge/{check}/uptime.svg?window=30d`,
//! `/badge/{check}/latency.svg`. The same checks as the status page.

use std::fmt::Write as _;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::{WindowQuery, path_of, percent, query_of, shown_check};
use crate::core::Color;
use crate::core::color::uptime_color;
use crate::core::text::escape_html as esc;
use crate::http::{ApiError, AppState};

const GREY: &str = "#555";
const PENDING: &str = "#9f9f9f";

fn fill(color: Color) -> &'static str {
    match color {
        Color::Green => "#4c1",
        Color::Yellow => "#dfb317",
        Color::Red => "#e05d44",
    }
}

/// `GET /badge/{check}.svg`: up, degraded, down or pending.
pub async fn status(
    State(state): State<AppState>,
    file: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let file = path_of(file)?;
    let name = file.strip_suffix(".svg").ok_or_else(not_svg)?;
    let check = shown_check(&state, name)?;
    let (message, color) = match (check.last_run_at, check.color) {
        (None, _) => ("pending", PENDING),
        (Some(_), Color::Green) => ("up", fill(Color::Green)),
        (Some(_), Color::Yellow) => ("degraded", fill(Color::Yellow)),
        (Some(_), Color::Red) => ("down", fill(Color::Red)),
    };
    Ok(svg(draw(&check.name, message, color)))
}

/// `GET /badge/{check}/uptime.svg?window=24h|7d|30d|90d` and `…/latency.svg`.
pub async fn measure(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (name, file) = path_of(path)?;
    let query = query_of(query)?;
    let check = shown_check(&state, &name)?;
    match file.as_str() {
        "uptime.svg" => {
            let window = query.window.as_deref().unwrap_or("30d");
            let windows = state.uptime.windows(&check.name, Utc::now());
            let pct = match window {
                "24h" => windows.h24,
                "7d" => windows.d7,
                "30d" => windows.d30,
                "90d" => windows.d90,
                other => {
                    let reason = format!("window must be 24h, 7d, 30d or 90d, not {other:?}");
                    return Err(ApiError::new(StatusCode::BAD_REQUEST, reason));
                }
            };
            let label = format!("uptime {window}");
            Ok(svg(match pct {
                Some(pct) => draw(
                    &label,
                    &format!("{}%", percent(pct)),
                    fill(uptime_color(pct)),
                ),
                None => draw(&label, "no data", PENDING),
            }))
        }
        "latency.svg" if query.window.is_none() => Ok(svg(match check.latency_ms {
            Some(ms) if check.last_run_at.is_some() => {
                draw("latency", &format!("{ms:.0} ms"), fill(check.color))
            }
            _ => draw("latency", "no data", PENDING),
        })),
        "latency.svg" => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the latency badge takes no window",
        )),
        _ => Err(ApiError::not_found(format!(
            "no badge {file:?} (uptime.svg or latency.svg)"
        ))),
    }
}

fn not_svg() -> ApiError {
    ApiError::not_found("badges end in .svg: /badge/{check}.svg")
}

fn svg(body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache, max-age=0"),
    ];
    (headers, body).into_response()
}

/// Width in pixels of `text` in 11 px Verdana, the badges' font, from
/// coarse character classes (close enough for the box to fit the text).
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' => 3.5,
            'f' | 'r' | 't' | 'I' | ' ' | '(' | ')' | '-' | '/' => 5.0,
            'm' | 'w' | 'M' | 'W' | '%' => 10.5,
            'A'..='Z' => 7.5,
            _ => 7.0,
        })
        .sum()
}

/// A badge: `label` on grey, `message` on `color`.
pub fn draw(label: &str, message: &str, color: &str) -> String {
    let lw = (text_width(label) + 10.0).round();
    let mw = (text_width(message) + 10.0).round();
    let width = lw + mw;
    let (label, message) = (esc(label), esc(message));
    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{GREY}"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{label}</text><text x="{lx}" y="14">{label}</text><text x="{mx}" y="15" fill="#010101" fill-opacity=".3">{message}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
        lx = lw / 2.0,
        mx = lw + mw / 2.0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boxes_grow_with_the_text_and_text_is_escaped() {
        let short = draw("web", "up", "#4c1");
        let long = draw("a-much-longer-check-name", "degraded", "#dfb317");
        let width = |svg: &str| -> f64 {
            let at = svg.find("width=\"").unwrap() + 7;
            svg[at..svg[at..].find('"').unwrap() + at].parse().unwrap()
        };
        assert!(width(&long) > width(&short) + 100.0);
        let tricky = draw("<a&b>", "\"x\"", "#4c1");
        assert!(tricky.contains("&lt;a&amp;b&gt;: &quot;x&quot;"));
        assert!(!tricky.contains("<a&b>"));
    }
}
