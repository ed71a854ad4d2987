"""Chat clients behind one small async protocol, resolved from `provider/model` names."""

from carryon.models.base import ChatClient, ChatRequest, ChatResult, Message, Usage
from carryon.models.registry import ModelSpec, open_client, parse_model_name

__all__ = [
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "Message",
    "ModelSpec",
    "Usage",
    "open_client",
    "parse_model_name",
]
