-- CreateEnum
CREATE TYPE "GuardianEventKind" AS ENUM ('ADOPTED', 'WARNED', 'RECOVERED', 'DELETED', 'VANISHED');

-- CreateTable
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "isAdmin" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Account" (
    "id" SERIAL NOT NULL,
    "username" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Account_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AccountOwner" (
    "accountId" INTEGER NOT NULL,
    "userId" INTEGER NOT NULL,
    "addedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AccountOwner_pkey" PRIMARY KEY ("accountId","userId")
);

-- CreateTable
CREATE TABLE "Queue" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "accountName" TEXT NOT NULL,
    "accountId" INTEGER,
    "durable" BOOLEAN NOT NULL DEFAULT true,
    "lastSize" INTEGER,
    "warned" BOOLEAN NOT NULL DEFAULT false,
    "unbounded" BOOLEAN NOT NULL DEFAULT false,
    "warnSize" INTEGER,
    "deleteSize" INTEGER,
    "firstSeenAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Queue_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Binding" (
    "id" SERIAL NOT NULL,
    "queueId" INTEGER NOT NULL,
    "exchange" TEXT NOT NULL,
    "routingKeyPattern" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Binding_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "GuardianEvent" (
    "id" SERIAL NOT NULL,
    "queueName" TEXT NOT NULL,
    "accountName" TEXT NOT NULL,
    "kind" "GuardianEventKind" NOT NULL,
    "size" INTEGER,
    "threshold" INTEGER,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "GuardianEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- CreateIndex
CREATE UNIQUE INDEX "Account_username_key" ON "Account"("username");

-- CreateIndex
CREATE INDEX "AccountOwner_userId_idx" ON "AccountOwner"("userId");

-- CreateIndex
CREATE UNIQUE INDEX "Queue_name_key" ON "Queue"("name");

-- CreateIndex
CREATE INDEX "Queue_accountName_idx" ON "Queue"("accountName");

-- CreateIndex
CREATE UNIQUE INDEX "Binding_queueId_exchange_routingKeyPattern_key" ON "Binding"("queueId", "exchange", "routingKeyPattern");

-- CreateIndex
CREATE INDEX "GuardianEvent_queueName_at_idx" ON "GuardianEvent"("queueName", "at");

-- CreateIndex
CREATE INDEX "GuardianEvent_at_idx" ON "GuardianEvent"("at");

-- AddForeignKey
ALTER TABLE "AccountOwner" ADD CONSTRAINT "AccountOwner_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AccountOwner" ADD CONSTRAINT "AccountOwner_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Queue" ADD CONSTRAINT "Queue_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Binding" ADD CONSTRAINT "Binding_queueId_fkey" FOREIGN KEY ("queueId") REFERENCES "Queue"("id") ON DELETE CASCADE ON UPDATE CASCADE;
