"""The errors a user can fix (bad schema, bad data, bad flags, a used job-dir): the CLI prints their
message alone, without a traceback. Set TFRS_TWOTOWER_DEBUG=1 to see the traceback too."""

from tfrs_twotower.training.job_dir import JobDirError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    JobDirError,
    ImportError,
    KeyError,
)
