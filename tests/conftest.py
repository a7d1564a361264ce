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


@pytest.fixture
def wordnet_data(monkeypatch):
    """Points NLTK (and the processes a test starts) at the WordNet beside the repository; skips (under CI: fails)
    when it is absent."""
    import nltk

    from tests.glue_files import shared_nltk_data

    folder = str(shared_nltk_data())
    monkeypatch.setenv("NLTK_DATA", folder)
    monkeypatch.setattr(nltk.data, "path", [folder, *nltk.data.path])
    return folder
