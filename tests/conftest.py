import pytest

from adv_trainer.embedding_hook import EmbeddingOutputHook


@pytest.fixture
def added(monkeypatch):
    """What the trainer's hook adds to the embedding output, one `(B, T, E)` entry per forward pass."""
    recorded = []
    original = EmbeddingOutputHook._add_delta

    def recording(self, module, args, output):
        result = original(self, module, args, output)
        recorded.append((result - output).detach())
        return result

    monkeypatch.setattr(EmbeddingOutputHook, "_add_delta", recording)
    return recorded
