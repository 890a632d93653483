//! `?format=csv` exports (audit log, reports): spreadsheet-safe lines and a
//! response that streams them a batch at a time, so a large export never
//! sits in memory.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

use crate::error::ApiError;

/// How a list answers: a JSON page, or every row as CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    #[default]
    Json,
    Csv,
}

/// Every cell quoted; a cell a spreadsheet would run as a formula (leading
/// `=`, `+`, `-`, `@`, tab or carriage return) gets a `'` in front.
pub(crate) fn csv_line(cells: impl IntoIterator<Item = String>) -> String {
    let mut line = cells
        .into_iter()
        .map(|cell| {
            let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{cell}")
            } else {
                cell
            };
            format!("\"{}\"", cell.replace('"', "\"\""))
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Streams `header` and then the lines `page` gives, batch after batch:
/// `page(position)` answers a batch's lines and the position after it, or
/// `None` after the last.
pub(crate) fn stream<F, Fut>(
    filename: &'static str,
    header: &'static [&'static str],
    page: F,
) -> Response
where
    F: Fn(Option<String>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Vec<String>, Option<String>), ApiError>> + Send,
{
    enum Next {
        Header,
        After(Option<String>),
        Done,
    }
    let page = std::sync::Arc::new(page);
    let stream = futures_util::stream::unfold(Next::Header, move |next| {
        let page = page.clone();
        async move {
            match next {
                Next::Done => None,
                Next::Header => Some((
                    Ok(csv_line(header.iter().map(|c| (*c).to_owned()))),
                    Next::After(None),
                )),
                Next::After(after) => match page(after).await {
                    Err(e) => {
                        tracing::error!(file = filename, error = %e.message, cause = ?e.cause, "CSV export stopped");
                        Some((
                            Err(std::io::Error::other("the export could not be read")),
                            Next::Done,
                        ))
                    }
                    Ok((lines, next)) => Some((
                        Ok(lines.concat()),
                        next.map_or(Next::Done, |n| Next::After(Some(n))),
                    )),
                },
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::csv_line;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line([
            "=HYPERLINK(\"x\")".into(),
            "plain".into(),
            "-1+1".into(),
            "@SUM".into(),
            "a,b".into(),
        ]);
        assert_eq!(
            line,
            "\"'=HYPERLINK(\"\"x\"\")\",\"plain\",\"'-1+1\",\"'@SUM\",\"a,b\"\r\n"
        );
    }
}
