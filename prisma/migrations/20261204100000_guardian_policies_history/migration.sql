-- AlterEnum
ALTER TYPE "GuardianEventKind" ADD VALUE 'CONSUMER_GONE';
ALTER TYPE "GuardianEventKind" ADD VALUE 'BINDING_ADDED';
ALTER TYPE "GuardianEventKind" ADD VALUE 'BINDING_REMOVED';
ALTER TYPE "GuardianEventKind" ADD VALUE 'USER_MISSING';
ALTER TYPE "GuardianEventKind" ADD VALUE 'MISNAMED_QUEUE';
ALTER TYPE "GuardianEventKind" ADD VALUE 'POLL_FAILED';

-- AlterTable
ALTER TABLE "GuardianEvent" ADD COLUMN     "detail" TEXT;

-- AlterTable
ALTER TABLE "Queue" ADD COLUMN     "consumerGoneAt" TIMESTAMP(3),
ADD COLUMN     "noConsumerSince" TIMESTAMP(3),
ADD COLUMN     "notifyEmails" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "webhookUrls" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateTable
CREATE TABLE "AccountPolicy" (
    "accountId" INTEGER NOT NULL,
    "warnSize" INTEGER,
    "deleteSize" INTEGER,
    "notifyEmails" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "webhookUrls" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "userMissingAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AccountPolicy_pkey" PRIMARY KEY ("accountId")
);

-- CreateTable
CREATE TABLE "QueueSample" (
    "id" BIGSERIAL NOT NULL,
    "queueName" TEXT NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "resolutionSeconds" INTEGER NOT NULL DEFAULT 0,
    "messages" INTEGER NOT NULL,
    "messagesReady" INTEGER,
    "messagesUnacknowledged" INTEGER,
    "consumers" INTEGER,
    "publishRate" DOUBLE PRECISION,
    "deliverRate" DOUBLE PRECISION,

    CONSTRAINT "QueueSample_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "QueueSample_queueName_resolutionSeconds_at_key" ON "QueueSample"("queueName", "resolutionSeconds", "at");

-- CreateIndex
CREATE INDEX "QueueSample_resolutionSeconds_at_idx" ON "QueueSample"("resolutionSeconds", "at");

-- AddForeignKey
ALTER TABLE "AccountPolicy" ADD CONSTRAINT "AccountPolicy_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;
