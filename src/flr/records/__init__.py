"""Records in and out, one module per concern: files (readers, writers, the resumable writer, field maps), messages
(chat message checks, prompts and responses to scoring inputs, record ids), sampling (the one seeded sampler),
stages (the file names jobs write) and provenance (summary.json: what ran). Pure Python; no torch.

Imports: flr.errors
"""

from flr.records.files import (
    FILE_SUFFIXES,
    Record,
    ResumableWriter,
    looks_local,
    parse_field_map,
    read_csv,
    read_json,
    read_jsonl,
    read_records,
    write_json,
    write_jsonl,
)
from flr.records.messages import (
    ROLES,
    assistant_text,
    conversation_text,
    get_prompt,
    get_text,
    message_problem,
    prompt_messages,
    record_id,
    to_scoring_input,
    validate_messages,
)
from flr.records.sampling import seeded_sample
from flr.records.stages import CANDIDATES_FILE, COMPARE_FILE, MINED_FILES, MOVES_FILE, SCORED_FILE, SUMMARY_FILE

__all__ = [
    "CANDIDATES_FILE",
    "COMPARE_FILE",
    "FILE_SUFFIXES",
    "MINED_FILES",
    "MOVES_FILE",
    "ROLES",
    "SCORED_FILE",
    "SUMMARY_FILE",
    "Record",
    "ResumableWriter",
    "get_prompt",
    "get_text",
    "assistant_text",
    "conversation_text",
    "looks_local",
    "message_problem",
    "parse_field_map",
    "prompt_messages",
    "read_csv",
    "read_json",
    "read_jsonl",
    "read_records",
    "record_id",
    "seeded_sample",
    "to_scoring_input",
    "validate_messages",
    "write_json",
    "write_jsonl",
]
