import pytest

from dataprep.memory import _libc, free_heap_bytes, give_back

glibc_with_mallinfo2 = pytest.mark.skipif(
    _libc() is None or not hasattr(_libc(), "mallinfo2") or not hasattr(_libc(), "malloc_trim"),
    reason="needs glibc >= 2.33 (mallinfo2, malloc_trim)",
)


@glibc_with_mallinfo2
def test_free_heap_is_returned_only_past_the_threshold():
    libc = _libc()
    blocks = [bytearray(64 << 10) for _ in range(256)]  # 16 MiB on the heap (below glibc's mmap threshold)
    del blocks[::2]  # 8 MiB free in the middle of the heap: only malloc_trim returns it
    free = free_heap_bytes(libc)
    assert free is not None and free >= 8 << 20
    assert give_back(keep_free=free + (1 << 30)) is False  # under the threshold: the pages stay
    assert give_back(keep_free=0) is True
    del blocks


def test_give_back_is_safe_without_glibc(monkeypatch):
    import dataprep.memory as memory

    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert give_back() is False
