"""Child process of the SQLite kill tests: commits batch after batch until it is killed.

    python state_writer.py DB SESSION [BLOCK_BATCH [BLOCK_ROW]]

Registers v00..v49 (integers, 0) unless the session has them, prints ``ready``, then
commits batches k = current + 1, current + 2, ... (all 50 variables set to k in one
``update_variables``), printing ``committed k`` after each. With BLOCK_BATCH, a TEMP
trigger calls back into Python for every updated row; when row BLOCK_ROW (default 25) of
batch BLOCK_BATCH is written, it prints ``inside k`` and blocks reading stdin — in the
middle of the transaction — until the parent kills it.
"""

from __future__ import annotations

import json
import os
import sys

from otpy.state import SQLiteState

COUNT = 50
NAMES = [f"v{i:02d}" for i in range(COUNT)]


def main(argv: list[str]) -> None:
    db, session = argv[1], argv[2]
    block_batch = int(argv[3]) if len(argv) > 3 else None
    block_row = int(argv[4]) if len(argv) > 4 else 25
    state = SQLiteState(db, session_id=session)
    present = {variable.name for variable in state.list_variables()}
    for name in NAMES:
        if name not in present:
            state.register_variable(name, "integer", 0)
    rows = 0

    def on_row(stored_value: str) -> int:
        nonlocal rows
        if json.loads(stored_value) == block_batch:
            rows += 1
            if rows == block_row:
                print(f"inside {block_batch}", flush=True)
                sys.stdin.readline()  # blocks until SIGKILL (returns only if the parent died)
                os._exit(3)
        return 0

    conn = state._conn  # the store's own connection: a TEMP trigger lives in one connection
    assert conn is not None
    conn.create_function("on_row", 1, on_row)
    conn.execute(
        "CREATE TEMP TRIGGER block_mid_batch AFTER UPDATE ON main.variables "
        "BEGIN SELECT on_row(NEW.value); END"
    )
    batch = state.get_variable(NAMES[0]).value
    print("ready", flush=True)
    for _ in range(1_000_000):  # an upper bound; the parent kills it long before
        batch += 1
        state.update_variables(dict.fromkeys(NAMES, batch))
        print(f"committed {batch}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
