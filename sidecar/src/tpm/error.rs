//! Errors of the TPM wrapper.

pub use tss_esapi::constants::response_code::Tss2ResponseCodeKind;

/// What went wrong talking to the TPM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The TCTI string is not one this wrapper accepts, or the TCTI could not be loaded or
    /// connected.
    #[error("TCTI {tcti:?}: {detail}")]
    Tcti {
        /// The TCTI string as given.
        tcti: String,
        /// Why it was refused or failed.
        detail: String,
    },
    /// A TPM command (or the TSS around it) failed.
    #[error("{operation}: {source}")]
    Tss {
        /// The command or step, such as `TPM2_Quote`.
        operation: &'static str,
        /// The TSS error: a TPM response code or a wrapper error.
        #[source]
        source: tss_esapi::Error,
    },
    /// An argument this wrapper refuses before sending anything to the TPM.
    #[error("invalid {what}: {detail}")]
    InvalidInput {
        /// The argument.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The TPM answered something this wrapper cannot use.
    #[error("unexpected output of {operation}: {detail}")]
    Unexpected {
        /// The command.
        operation: &'static str,
        /// What was unexpected.
        detail: String,
    },
}

impl TpmError {
    /// The TPM response code's kind, when the TPM itself refused a command (for example
    /// [`Tss2ResponseCodeKind::Integrity`] from TPM2_ActivateCredential with a credential made
    /// for another key's Name).
    pub fn response_kind(&self) -> Option<Tss2ResponseCodeKind> {
        match self {
            TpmError::Tss {
                source: tss_esapi::Error::Tss2Error(rc),
                ..
            } => rc.kind(),
            _ => None,
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        TpmError::InvalidInput {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn unexpected(operation: &'static str, detail: impl Into<String>) -> Self {
        TpmError::Unexpected {
            operation,
            detail: detail.into(),
        }
    }
}

/// `.tss("TPM2_X")?` on a `tss_esapi::Result`.
pub(crate) trait TssResultExt<T> {
    fn tss(self, operation: &'static str) -> Result<T, TpmError>;
}

impl<T> TssResultExt<T> for tss_esapi::Result<T> {
    fn tss(self, operation: &'static str) -> Result<T, TpmError> {
        self.map_err(|source| TpmError::Tss { operation, source })
    }
}
