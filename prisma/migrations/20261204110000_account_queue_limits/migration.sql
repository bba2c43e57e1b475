-- AlterTable
ALTER TABLE "AccountPolicy" ADD COLUMN     "expiresMs" INTEGER,
ADD COLUMN     "maxLength" INTEGER,
ADD COLUMN     "messageTtlMs" INTEGER,
ADD COLUMN     "overflow" TEXT;
