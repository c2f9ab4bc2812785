"""A staged import's writes shrink when they hold SQLite's lock too long and grow back when the machine is quiet."""

from datasets_app.imports.services import BATCH_SIZE, MIN_WRITE_ROWS, WRITE_TARGET_S, WritePace


def sizes(pace: WritePace, rows: int) -> list[int]:
    return [len(piece) for piece in pace.pieces([[n] for n in range(rows)])]


def test_a_batch_is_written_whole_while_writes_are_quick():
    pace = WritePace()
    pace.took(WRITE_TARGET_S / 4, BATCH_SIZE)
    assert sizes(pace, BATCH_SIZE) == [BATCH_SIZE]


def test_a_slow_write_makes_the_next_ones_short_enough_to_keep_the_wait_near_the_target():
    pace = WritePace()
    pace.took(WRITE_TARGET_S * 4, BATCH_SIZE)  # a loaded machine: 5000 rows held the lock 2 s
    assert sizes(pace, BATCH_SIZE) == [BATCH_SIZE // 4] * 4
    pace.took(WRITE_TARGET_S * 1000, BATCH_SIZE // 4)
    assert pace.size == MIN_WRITE_ROWS


def test_a_batch_a_little_over_the_size_is_written_in_even_pieces_not_a_piece_and_a_sliver():
    pace = WritePace()
    pace.took(WRITE_TARGET_S * 1.1, BATCH_SIZE)
    assert sizes(pace, BATCH_SIZE) == [BATCH_SIZE // 2] * 2


def test_quick_writes_grow_the_pieces_back_to_a_whole_batch():
    pace = WritePace()
    pace.took(WRITE_TARGET_S * 10, BATCH_SIZE)
    grown = []
    for _ in range(6):
        pace.took(WRITE_TARGET_S / 10, pace.size)
        grown.append(pace.size)
    assert grown[0] == 2 * (BATCH_SIZE // 10)
    assert grown[-1] == BATCH_SIZE
    assert sum(sizes(pace, 12_345)) == 12_345  # nothing lost or repeated at any size
