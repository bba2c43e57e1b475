-- CreateTable
CREATE TABLE "ReservedAccountName" (
    "name" TEXT NOT NULL,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ReservedAccountName_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "AuditEntry" (
    "id" SERIAL NOT NULL,
    "actor" TEXT,
    "mutation" TEXT NOT NULL,
    "account" TEXT,
    "object" TEXT,
    "arguments" JSONB NOT NULL,
    "outcome" TEXT NOT NULL,
    "error" TEXT,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AuditEntry_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "AuditEntry_account_id_idx" ON "AuditEntry"("account", "id");

-- CreateIndex
CREATE INDEX "AuditEntry_object_id_idx" ON "AuditEntry"("object", "id");

-- CreateIndex
CREATE INDEX "AuditEntry_actor_id_idx" ON "AuditEntry"("actor", "id");
