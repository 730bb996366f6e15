"""The protocol's error codes, one exception class per `ERROR_*` code.

The backend the server calls (and everything behind it) raises a
`ServiceError` subclass for bad input or an unavailable resource; the server
sends `.code` as the `ERROR_*` reply of docs/PROTOCOL.md and logs `.message`;
the command-line tools print `.message`. One class, one meaning.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: `code` goes on the wire, `message` goes to logs and CLIs."""

    code = "ERROR_INTERNAL"

    def __init__(self, message: str = ""):
        super().__init__(message or self.code)
        self.message = message or self.code

    def __reduce__(self):  # keep the class across Ray's pickling
        return (self.__class__, (self.message,))


class NotLoggedInError(ServiceError):
    code = "ERROR_NOT_LOGGED_IN"


class VipRequiredError(ServiceError):
    code = "ERROR_VIP_REQUIRED"


class ImageRequestError(ServiceError):
    """The IMAGE payload is malformed (counts and sizes do not add up)."""

    code = "ERROR_IMAGE_REQUEST"


class VideoRequestError(ServiceError):
    """The VIDEO request could not be processed for a reason not listed below."""

    code = "ERROR_VIDEO_REQUEST"


class BadImageError(ServiceError):
    """An image could not be decoded, or is too large once decoded."""

    code = "ERROR_BAD_IMAGE"


class TooManyImagesError(ServiceError):
    code = "ERROR_TOO_MANY_IMAGES"


class TooManyPixelsError(ServiceError):
    """The images of one upload add up to more pixels than the server decodes per request."""

    code = "ERROR_TOO_MANY_PIXELS"


class NoFramesError(ServiceError):
    """A video (or empty upload) gave no readable frame."""

    code = "ERROR_NO_FRAMES"


class PayloadTooLargeError(ServiceError):
    code = "ERROR_PAYLOAD_TOO_LARGE"


class TooManyFramesError(ServiceError):
    """Too many frames: more than the device's memory can take in one forward pass, or a video
    that needs more frames (or seconds) decoded than the server gives one video."""

    code = "ERROR_TOO_MANY_FRAMES"


class UnprocessableUploadError(ServiceError):
    """The upload lost a stage replica twice (its input is taken to kill it); it is not run again."""

    code = "ERROR_UNPROCESSABLE_UPLOAD"


class QuotaExceededError(ServiceError):
    """The user's stored results are at their quota (count or bytes) and the policy is to refuse."""

    code = "ERROR_QUOTA_EXCEEDED"


class ModelUnavailableError(ServiceError):
    """The checkpoint is missing or corrupt: reconstructions cannot run."""

    code = "ERROR_MODEL_NOT_LOADED"


class BusyError(ServiceError):
    code = "ERROR_BUSY"


class ResultTooLargeError(ServiceError):
    """The GLB is larger than the reply may carry (`proxy.max_result_bytes`)."""

    code = "ERROR_RESULT_TOO_LARGE"


class InvalidHashError(ServiceError):
    code = "ERROR_INVALID_HASH"


class HashNotFoundError(ServiceError):
    code = "ERROR_HASH_NOT_FOUND"


class FileMissingError(ServiceError):
    """The row exists but its GLB file is gone."""

    code = "ERROR_FILE_MISSING"


class SkySegmentationUnavailableError(ServiceError):
    code = "ERROR_SKY_MASK_UNAVAILABLE"


class IncompleteRequestError(ServiceError):
    """The connection ended inside a request frame."""

    code = "ERROR_INCOMPLETE_REQUEST"


class ReadTimeoutError(ServiceError):
    """The client went silent inside a request frame."""

    code = "ERROR_READ_TIMEOUT"
