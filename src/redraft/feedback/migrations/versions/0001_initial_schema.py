"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:08:57.576577
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_annotators_token_hash")),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("open_slots", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('compare', 'rank', 'rate', 'correct')", name=op.f("ck_items_kind")),
        sa.CheckConstraint("open_slots >= 0", name=op.f("ck_items_open_slots")),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_items_prompt_id_prompts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_items_open",
            ["id"],
            unique=False,
            sqlite_where=sa.text("open_slots > 0"),
            postgresql_where=sa.text("open_slots > 0"),
        )
        batch_op.create_index(batch_op.f("ix_items_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_outputs_prompt_id_prompts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outputs")),
    )
    with op.batch_alter_table("outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outputs_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_assignments_annotator_id_annotators")
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_assignments_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("item_id", "annotator_id", name=op.f("uq_assignments_item_id")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_annotator", ["annotator_id", "done"], unique=False)
        batch_op.create_index("ix_assignments_expiry", ["done", "expires_at"], unique=False)

    op.create_table(
        "item_outputs",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_item_outputs_item_id_items")),
        sa.ForeignKeyConstraint(["output_id"], ["outputs.id"], name=op.f("fk_item_outputs_output_id_outputs")),
        sa.PrimaryKeyConstraint("item_id", "position", name=op.f("pk_item_outputs")),
    )
    with op.batch_alter_table("item_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_outputs_output_id"), ["output_id"], unique=False)

    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("choice", sa.String(length=3), nullable=True),
        sa.Column("order", sa.JSON(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("corrected_text", sa.Text(), nullable=True),
        sa.CheckConstraint("choice IS NULL OR choice IN ('a', 'b', 'tie')", name=op.f("ck_labels_choice")),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 7", name=op.f("ck_labels_rating")),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], name=op.f("fk_labels_annotator_id_annotators")),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_labels_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("item_id", "annotator_id", name=op.f("uq_labels_item_id")),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_labels_annotator_id"), ["annotator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_labels_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labels_item_id"))
        batch_op.drop_index(batch_op.f("ix_labels_annotator_id"))

    op.drop_table("labels")
    with op.batch_alter_table("item_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_outputs_output_id"))

    op.drop_table("item_outputs")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_expiry")
        batch_op.drop_index("ix_assignments_annotator")

    op.drop_table("assignments")
    with op.batch_alter_table("outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outputs_prompt_id"))

    op.drop_table("outputs")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_prompt_id"))
        batch_op.drop_index(
            "ix_items_open", sqlite_where=sa.text("open_slots > 0"), postgresql_where=sa.text("open_slots > 0")
        )

    op.drop_table("items")
    op.drop_table("prompts")
    op.drop_table("annotators")
