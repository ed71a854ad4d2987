"""Judges: Ben-Util (per checklist item), harm (per unsafe-content description) and response type, per response.

Every judgement records the judge model, prompt name + version and the raw output; output that cannot be parsed
after one stricter retry is stored unscored with a reason, never as a 0.
"""

from carryon.judge.common import Verdict
from carryon.judge.prompts import Prompt, load_prompt

__all__ = ["Prompt", "Verdict", "load_prompt"]
