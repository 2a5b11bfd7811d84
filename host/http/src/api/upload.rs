//! Reading a plugin upload: the raw component as the body with the
//! metadata in the query string, or a multipart form with the same fields
//! and the component in a `wasm` (or `file`) part. The fields are checked by
//! [`pop_app::plugins::upload`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use pop_app::AppState;
pub use pop_app::plugins::upload::MAX_PLUGIN_BYTES;
use pop_app::plugins::upload::UploadForm;

use pop_app::{AppError, AppResult};

/// Parse an upload request of either shape.
pub async fn read_upload(request: Request, state: &AppState) -> AppResult<UploadForm> {
    let mut form = UploadForm::default();
    let query = request.uri().query().unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&query)
        .map_err(|e| AppError::BadRequest(format!("The query string could not be parsed: {e}")))?;
    for (key, value) in pairs {
        form.set(&key, value)?;
    }
    let is_multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("The multipart body could not be read: {e}")))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| AppError::BadRequest(format!("The multipart body could not be read: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AppError::BadRequest(format!("The multipart field {name} could not be read: {e}")))?;
            if name == "wasm" || name == "file" {
                form.wasm = bytes.to_vec();
            } else {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| AppError::BadRequest(format!("The multipart field {name} is not text.")))?;
                form.set(&name, text)?;
            }
        }
    } else {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            AppError::TooLarge(format!(
                "The plugin could not be read (at most {MAX_PLUGIN_BYTES} bytes): {e}"
            ))
        })?;
        form.wasm = bytes.to_vec();
    }
    if form.wasm.len() > MAX_PLUGIN_BYTES {
        return Err(AppError::TooLarge(format!(
            "A plugin may be at most {MAX_PLUGIN_BYTES} bytes."
        )));
    }
    Ok(form)
}
