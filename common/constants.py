"""Constants both sides rely on. Changing one is a change of the wire contract."""

from common.version import __version__

# Version of the HTTP API (semver); bump the minor for additions, the major for breaks.
API_VERSION = "1.0.0"
AGENT_VERSION = __version__

MACHINE_ID_MAX_LENGTH = 200
# Metadata strings (OS name, hostname, ...) longer than this are refused: they are shown in tables.
SYSTEM_FIELD_MAX_LENGTH = 256

API_KEY_PREFIX = "api_"
# secrets.token_urlsafe(32) gives 43 characters; the contract asks for at least 32.
API_KEY_MIN_RANDOM_CHARS = 32

SCOPE_AGENT = "agent"
SCOPE_READ = "read"
SCOPE_ADMIN = "admin"
# Only exchanges itself for one machine's own key (POST /api/agent/enroll); never combined.
SCOPE_ENROLL = "enroll"
ALL_SCOPES = (SCOPE_AGENT, SCOPE_READ, SCOPE_ADMIN, SCOPE_ENROLL)

# Paths of the API, so the agent and the server cannot drift apart.
PATH_STATUS = "/api/status"
PATH_CONFIG = "/api/config"
PATH_REPORT = "/api/fleet/report"
PATH_PING = "/api/fleet/ping"
PATH_FLEET = "/api/fleet"
PATH_ENROLL = "/api/agent/enroll"
PATH_GOODBYE = "/api/agent/goodbye"  # a clean stop: away, not offline (servers before 1.1 answer 404)

# The agent's defaults; the server's rate limits leave ample room above them.
DEFAULT_REPORT_INTERVAL_SECONDS = 60.0
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30.0
# Per machine of an organisation, per minute (the contract fixes the ping limit).
PING_LIMIT_PER_MINUTE = 120
REPORT_LIMIT_PER_MINUTE = 120

# What the server keeps of a report's unknown fields (at any level: the report, `system`,
# `health`), as JSON bytes: a listing of 1,000 machines stays a few MB whatever agents send.
UNKNOWN_FIELDS_MAX_BYTES = 1024
# How far back a report's own timestamp may place its history sample: what the agent's queue
# holds (10,000 reports) at the default 60 s interval, about a week. Older: the receipt time.
SAMPLE_MAX_AGE_SECONDS = 10_000 * 60
# History keeps at most one sample per machine in any window of this many seconds.
SAMPLE_MIN_SPACING_SECONDS = 5.0
